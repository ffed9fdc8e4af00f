"""The miniature's data: precise synthetic scenes, unlabelled "real" photos, a real benchmark.

- **Synthetic, precise** (the paper's Hypersim / Virtual KITTI role, Sec. 3): a numpy ray-caster
  renders random rooms - a ground plane, a back wall, optional side walls, clutter against the
  back wall, a foreground object of spheres and boxes standing on the floor - with procedural
  solid textures (checkers, stripes, sine noise), Lambertian shading under a directional light
  with cast shadows, from a pitched pinhole camera. The depth (camera-space z of the first hit)
  is exact, so the labels are too.
- **Unlabelled real** (the paper's 62M real images, Sec. 4): random square crops of the photos
  scikit-image and scikit-learn ship (never the evaluation photo), flipped and colour-jittered.
- **DA-2K-mini** (the paper's DA-2K, Sec. 6): ``skimage.data.stereo_motorcycle()`` - a real
  photo with a ground-truth disparity map (Middlebury 2014; ``inf`` where unknown, masked).
  Point pairs whose disparities differ by a ratio > 1.15: "which point is closer?". Plus
  AbsRel and delta1 after per-image scale-and-shift alignment in disparity space.

All maps here are **disparity** (inverse depth): larger = closer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

# ---------------------------------------------------------------------------------------------
# Ray-caster

SCENES = "garage-2"  # the version of random_scene (in the disk cache's keys): change it with it


@dataclass
class Camera:
    """Pinhole camera at the origin looking along +z (y up), pitched down by ``pitch`` radians."""

    fov_y: float = np.deg2rad(60.0)
    pitch: float = 0.0

    def rays(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """(origins, directions), each (H*W, 3) in world space. Directions have camera-space
        z = 1, so the ray parameter t of a hit *is* its depth (camera-space z)."""
        f = (height / 2) / np.tan(self.fov_y / 2)
        jj, ii = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
        cam = np.stack([(jj - width / 2) / f, -(ii - height / 2) / f, np.ones_like(ii)], -1)
        c, s = np.cos(self.pitch), np.sin(self.pitch)
        rot = np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])  # forward -> (0, -s, c)
        dirs = cam.reshape(-1, 3) @ rot.T
        return np.zeros_like(dirs), dirs


@dataclass
class Plane:
    point: tuple[float, float, float]
    normal: tuple[float, float, float]  # unit, facing the camera
    texture: dict = field(default_factory=dict)


@dataclass
class Sphere:
    center: tuple[float, float, float]
    radius: float
    texture: dict = field(default_factory=dict)


@dataclass
class Box:
    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    texture: dict = field(default_factory=dict)


@dataclass
class Scene:
    objects: list = field(default_factory=list)
    light: tuple[float, float, float] = (0.3, 0.8, -0.5)  # direction towards the light
    ambient: float = 0.25
    camera: Camera = field(default_factory=Camera)


def _hit(obj: Plane | Sphere | Box, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(t, normal) of the first hit with t > 1e-4 per ray (t = inf where none)."""
    n_rays = len(d)
    if isinstance(obj, Plane):
        n = np.asarray(obj.normal, float)
        denom = d @ n
        with np.errstate(divide="ignore", invalid="ignore"):
            t = ((np.asarray(obj.point) - o) @ n) / denom
        t = np.where((np.abs(denom) > 1e-12) & (t > 1e-4), t, np.inf)
        return t, np.broadcast_to(n, (n_rays, 3))
    if isinstance(obj, Sphere):
        oc = o - np.asarray(obj.center)
        a = np.einsum("ij,ij->i", d, d)
        b = 2 * np.einsum("ij,ij->i", oc, d)
        c = np.einsum("ij,ij->i", oc, oc) - obj.radius**2
        disc = b * b - 4 * a * c
        root = np.sqrt(np.maximum(disc, 0))
        t0, t1 = (-b - root) / (2 * a), (-b + root) / (2 * a)
        t = np.where(t0 > 1e-4, t0, np.where(t1 > 1e-4, t1, np.inf))
        t = np.where(disc >= 0, t, np.inf)
        t_hit = np.where(np.isfinite(t), t, 0.0)[:, None]
        return t, (o + t_hit * d - np.asarray(obj.center)) / obj.radius
    lo, hi = np.asarray(obj.lo), np.asarray(obj.hi)  # axis-aligned box: the slab method
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d
        ta, tb = (lo - o) * inv, (hi - o) * inv
    tmin, tmax = np.minimum(ta, tb), np.maximum(ta, tb)
    tmin, tmax = np.nan_to_num(tmin, nan=-np.inf), np.nan_to_num(tmax, nan=np.inf)
    t_near, t_far = tmin.max(1), tmax.min(1)
    axis = tmin.argmax(1)
    t = np.where((t_near <= t_far) & (t_near > 1e-4), t_near, np.inf)
    normal = np.zeros((n_rays, 3))
    normal[np.arange(n_rays), axis] = -np.sign(d[np.arange(n_rays), axis])
    return t, normal


def _texture(tex: dict, p: np.ndarray) -> np.ndarray:
    """(N, 3) albedo of a procedural solid texture at world points ``p``."""
    c1 = np.asarray(tex.get("c1", (0.7, 0.7, 0.7)))
    c2 = np.asarray(tex.get("c2", c1))
    kind, s = tex.get("kind", "plain"), tex.get("scale", 1.0)
    if kind == "checker":
        w = (np.floor(p / s).sum(1) % 2)[:, None]
    elif kind == "stripes":
        w = (0.5 + 0.5 * np.sin(p @ np.asarray(tex["axis"]) * np.pi / s))[:, None]
    elif kind == "noise":  # a sum of random sine waves: smooth, marble-like
        freqs, phases = np.asarray(tex["freqs"]), np.asarray(tex["phases"])
        w = (0.5 + 0.5 * np.sin(p @ freqs.T / s + phases).mean(1) * 1.6).clip(0, 1)[:, None]
    else:
        w = np.zeros((len(p), 1))
    return c1 * (1 - w) + c2 * w


def render(scene: Scene, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(image (H, W, 3) float32 in [0, 1], depth (H, W) float32): camera-space z of the first
    hit per pixel centre (inf where a ray hits nothing)."""
    o, d = scene.camera.rays(height, width)
    hits = [_hit(obj, o, d) for obj in scene.objects]
    ts = np.stack([h[0] for h in hits])  # (n_obj, N)
    first = ts.argmin(0)
    t = ts[first, np.arange(len(d))]
    rows = np.arange(len(d))
    found = np.isfinite(t)
    normal = np.stack([h[1] for h in hits])[first, rows]  # (N, 3)
    light = np.asarray(scene.light, float)
    light = light / np.linalg.norm(light)
    p = o + np.where(found, t, 0)[:, None] * d
    lambert = np.clip(normal @ light, 0, None)
    casters = [obj for obj in scene.objects if not isinstance(obj, Plane)]
    if casters:  # one shadow ray per pixel towards the light, tested against every caster
        origin = p + 1e-3 * normal
        towards = np.broadcast_to(light, origin.shape)
        blocked = np.min([_hit(c, origin, towards)[0] for c in casters], axis=0) < np.inf
        lambert = np.where(blocked, 0.0, lambert)
    shade = scene.ambient + (1 - scene.ambient) * lambert
    rgb = np.zeros((len(d), 3))
    for k, obj in enumerate(scene.objects):
        sel = (first == k) & found
        if sel.any():
            rgb[sel] = _texture(obj.texture, p[sel]) * shade[sel, None]
    image = rgb.reshape(height, width, 3).clip(0, 1).astype(np.float32)
    return image, t.reshape(height, width).astype(np.float32)


def _random_texture(rng: np.random.Generator) -> dict:
    c1 = rng.uniform(0.1, 0.95, 3)
    c2 = (c1 * rng.uniform(0.3, 1.6, 3)).clip(0, 1) if rng.random() < 0.6 else rng.uniform(0, 1, 3)
    kind = rng.choice(["plain", "checker", "stripes", "noise", "noise"])
    axis = rng.normal(size=3)
    return dict(
        kind=str(kind),
        c1=tuple(c1),
        c2=tuple(c2),
        scale=float(rng.uniform(0.2, 1.2)),
        axis=tuple(axis / np.linalg.norm(axis)),
        freqs=rng.normal(size=(6, 3)).tolist(),
        phases=rng.uniform(0, 2 * np.pi, 6).tolist(),
    )


# DEVIATION: the rooms are built like the evaluation photo's garage (a foreground object on the
# floor in front of shelf-like clutter); the paper's synthetic sets are general scenes.
def random_scene(rng: np.random.Generator) -> Scene:
    """A random room: ground, back wall 4-15 m away, maybe side walls; 0-6 shallow boxes against
    the back wall (shelves, cartons); a foreground object standing on the floor 1.8-6 m away -
    a cluster of 2-7 spheres and boxes (a machine, a piece of furniture); 0-3 more spheres on
    the floor; a random light and a camera 1-2 m up pitched 0-25 degrees down."""
    h = rng.uniform(1.0, 2.0)  # camera height above the floor
    objs: list = [Plane((0, -h, 0), (0, 1, 0), _random_texture(rng))]
    back = rng.uniform(4.0, 15.0)
    objs.append(Plane((0, 0, back), (0, 0, -1), _random_texture(rng)))
    for side in (-1, 1):
        if rng.random() < 0.5:
            objs.append(
                Plane((side * rng.uniform(2.0, 6.0), 0, 0), (-side, 0, 0), _random_texture(rng))
            )
    for _ in range(rng.integers(0, 7)):  # clutter within 1 m of the back wall
        size = rng.uniform(0.3, 1.5, 3)
        size[2] = rng.uniform(0.2, 0.9)
        x, y = rng.uniform(-0.7, 0.7) * back, rng.uniform(-h, 1.5)
        lo = (x - size[0] / 2, y, back - size[2] - 0.01)
        objs.append(Box(lo, (lo[0] + size[0], y + size[1], back - 0.01), _random_texture(rng)))
    zc = rng.uniform(1.8, min(6.0, back - 1.5))  # the foreground object: a cluster of parts
    xc, width = rng.uniform(-0.35, 0.35) * zc, rng.uniform(0.8, 2.5)
    for _ in range(rng.integers(2, 8)):
        if rng.random() < 0.5:
            r = rng.uniform(0.15, 0.6)
            centre = (xc + rng.uniform(-width, width) / 2, -h + rng.uniform(r, 1.5), zc)
            centre = (centre[0], centre[1], zc + rng.uniform(-0.4, 0.4))
            objs.append(Sphere(centre, r, _random_texture(rng)))
        else:
            size = rng.uniform(0.1, 1.0, 3)
            x0 = xc + rng.uniform(-width, width) / 2
            y0 = -h if rng.random() < 0.5 else -h + rng.uniform(0, 1.0)
            z0 = zc + rng.uniform(-0.4, 0.4)
            hi = (x0 + size[0], y0 + size[1], z0 + size[2])
            objs.append(Box((x0, y0, z0), hi, _random_texture(rng)))
    for _ in range(rng.integers(0, 4)):
        r = rng.uniform(0.25, 1.0)
        z = rng.uniform(2.0, max(2.1, back - r))
        objs.append(Sphere((rng.uniform(-0.6, 0.6) * z, -h + r, z), r, _random_texture(rng)))
    light = (rng.uniform(-1, 1), rng.uniform(0.3, 1.0), rng.uniform(-1, 0.5))
    camera = Camera(fov_y=np.deg2rad(rng.uniform(45, 75)), pitch=np.deg2rad(rng.uniform(0, 25)))
    return Scene(objs, light=light, ambient=float(rng.uniform(0.15, 0.4)), camera=camera)


def make_synthetic(
    n: int, *, size: int, seed: int, supersample: int = 2
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` rendered scenes: images (n, 3, size, size) in [0, 1] and exact disparity
    (n, size, size) = 1 / depth. Rendered at ``supersample`` x the size and box-filtered
    (image and disparity alike: anti-aliased edges)."""
    if n < 1 or size < 2 or supersample < 1:
        raise ValueError(
            f"make_synthetic: n={n}, size={size}, supersample={supersample}: need >= 1, 2, 1"
        )
    rng = np.random.default_rng(seed)
    images, disps = [], []
    for _ in range(n):
        k = supersample
        image, depth = render(random_scene(rng), k * size, k * size)
        image = image + rng.normal(0, 0.01, image.shape)  # sensor noise
        disp = 1.0 / np.where(np.isfinite(depth), depth, 1e3)
        images.append(image.reshape(size, k, size, k, 3).mean((1, 3)))
        disps.append(disp.reshape(size, k, size, k).mean((1, 3)))
    x = torch.from_numpy(np.stack(images).clip(0, 1)).permute(0, 3, 1, 2).float()
    return x.contiguous(), torch.from_numpy(np.stack(disps)).float()


# ---------------------------------------------------------------------------------------------
# Unlabelled real photos


def real_photos() -> dict[str, np.ndarray]:
    """The bundled photos of scenes and surfaces (uint8 RGB), never the evaluation photo."""
    import skimage.data as sk
    from sklearn.datasets import load_sample_images

    photos = {n: getattr(sk, n)() for n in ("astronaut", "coffee", "chelsea", "rocket", "camera")}
    photos |= {n: getattr(sk, n)() for n in ("brick", "grass", "gravel")}
    for name, image in zip(("china", "flower"), load_sample_images().images, strict=True):
        photos[name] = image
    return {k: np.stack([v] * 3, -1) if v.ndim == 2 else v[..., :3] for k, v in photos.items()}


def make_real(n: int, *, size: int, seed: int) -> torch.Tensor:
    """``n`` unlabelled crops (n, 3, size, size) in [0, 1]: a random square of 20-70% of a
    photo's short side, resized (Pillow bicubic), maybe flipped, brightness/contrast/saturation
    jittered by up to 20%."""
    if n < 1 or size < 2:
        raise ValueError(f"make_real: n={n} and size={size} must be >= 1 and >= 2")
    rng = np.random.default_rng(seed)
    photos = list(real_photos().values())
    out = np.empty((n, size, size, 3), np.float32)
    for i in range(n):
        photo = photos[rng.integers(len(photos))]
        h, w = photo.shape[:2]
        side = int(min(h, w) * rng.uniform(0.2, 0.7))
        top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = Image.fromarray(photo[top : top + side, left : left + side])
        x = np.asarray(crop.resize((size, size), Image.Resampling.BICUBIC), np.float32) / 255
        if rng.random() < 0.5:
            x = x[:, ::-1]
        grey = x.mean(-1, keepdims=True)
        x = grey + (x - grey) * rng.uniform(0.8, 1.2)  # saturation
        x = x.mean() + (x - x.mean()) * rng.uniform(0.8, 1.2)  # contrast
        out[i] = (x * rng.uniform(0.8, 1.2)).clip(0, 1)  # brightness
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


# ---------------------------------------------------------------------------------------------
# DA-2K-mini and the metrics


def motorcycle() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image uint8 (500, 741, 3), disparity float32 (500, 741), valid mask): the left view of
    ``skimage.data.stereo_motorcycle`` and its ground-truth disparity, inf/nan/<=0 masked."""
    import skimage.data as sk

    left, _, disp = sk.stereo_motorcycle()
    valid = np.isfinite(disp) & (disp > 0)
    return left, np.where(valid, disp, 0).astype(np.float32), valid


def sample_pairs(
    disparity: np.ndarray,
    valid: np.ndarray,
    n: int,
    *,
    ratio: float = 1.15,
    max_distance: float | None = None,
    max_row_offset: int | None = None,
    mirrored: bool = False,
    seed: int = 0,
) -> np.ndarray:
    """(m <= n, 4) pairs (row_a, col_a, row_b, col_b) of valid pixels whose disparities differ
    by a ratio > ``ratio``, the first of each pair the closer one (larger disparity). With
    ``max_distance``: pairs at most that many pixels apart (pairs across depth edges). With
    ``max_row_offset``: the second point anywhere in the image's width but at most that many
    rows from the first (|row_a - row_b| <= max_row_offset), so that "lower in the picture is
    closer" cannot rank them (same-row pairs). With ``mirrored`` too: the second point also at
    most ``max_row_offset`` columns from the first's mirror image across the vertical centre
    line, so that "the sides are closer than the centre" cannot rank them either."""
    if disparity.shape != valid.shape:
        raise ValueError(f"valid: shape {valid.shape} != disparity shape {disparity.shape}")
    if max_distance is not None and max_row_offset is not None:
        raise ValueError("max_distance and max_row_offset: give at most one")
    if mirrored and max_row_offset is None:
        raise ValueError("mirrored=True needs max_row_offset")
    if max_row_offset is not None and max_row_offset < 0:
        raise ValueError(f"max_row_offset={max_row_offset} must be >= 0")
    rng = np.random.default_rng(seed)
    rows, cols = np.nonzero(valid)
    h, w = disparity.shape
    found: list[np.ndarray] = []
    for _ in range(50):
        k = 4 * n
        a = rng.integers(len(rows), size=k)
        ra, ca = rows[a], cols[a]
        if max_row_offset is not None:
            off = rng.integers(-max_row_offset, max_row_offset + 1, size=k)
            rb, cb = (ra + off).clip(0, h - 1), rng.integers(w, size=k)
            if mirrored:
                off = rng.integers(-max_row_offset, max_row_offset + 1, size=k)
                cb = (w - 1 - ca + off).clip(0, w - 1)
        elif max_distance is None:
            b = rng.integers(len(rows), size=k)
            rb, cb = rows[b], cols[b]
        else:
            off = rng.uniform(-max_distance, max_distance, size=(k, 2)).round().astype(int)
            rb, cb = (ra + off[:, 0]).clip(0, h - 1), (ca + off[:, 1]).clip(0, w - 1)
        da, db = disparity[ra, ca], disparity[rb, cb]
        ok = valid[rb, cb] & (np.maximum(da, db) > ratio * np.minimum(da, db))
        swap = db > da
        pairs = np.stack([ra, ca, rb, cb], 1)[ok]
        pairs[swap[ok]] = pairs[swap[ok]][:, [2, 3, 0, 1]]
        found.append(pairs)
        if sum(len(p) for p in found) >= n:
            break
    return np.concatenate(found)[:n]


def pair_accuracy(prediction: np.ndarray, pairs: np.ndarray) -> float:
    """Fraction of pairs whose first point the predicted disparity puts closer (ties: half)."""
    if len(pairs) == 0:
        raise ValueError("pairs: no pairs to score")
    pa = prediction[pairs[:, 0], pairs[:, 1]]
    pb = prediction[pairs[:, 2], pairs[:, 3]]
    return float(np.mean((pa > pb) + 0.5 * (pa == pb)))


def align_scale_shift(prediction: np.ndarray, target: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``s * prediction + t`` with (s, t) the least-squares fit to ``target`` on ``valid``."""
    p, g = prediction[valid].astype(np.float64), target[valid].astype(np.float64)
    a = np.stack([p, np.ones_like(p)], 1)
    (s, t), *_ = np.linalg.lstsq(a, g, rcond=None)
    return (s * prediction + t).astype(np.float32)


def depth_metrics(prediction: np.ndarray, disparity: np.ndarray, valid: np.ndarray) -> dict:
    """AbsRel and delta1 in depth space after aligning the predicted disparity to the true one
    in disparity space (MiDaS' protocol); predicted disparities are clipped at 1/100 of the
    largest true one so that depth stays finite."""
    aligned = align_scale_shift(prediction, disparity, valid)
    floor = disparity[valid].max() / 100
    d_pred = 1.0 / np.maximum(aligned[valid], floor)
    d_true = 1.0 / disparity[valid]
    abs_rel = float(np.mean(np.abs(d_pred - d_true) / d_true))
    delta1 = float(np.mean(np.maximum(d_pred / d_true, d_true / d_pred) < 1.25))
    return {"abs_rel": abs_rel, "delta1": delta1}


def add_outlier_blobs(
    disparity: torch.Tensor, *, fraction: float, seed: int, n_blobs: int = 3
) -> torch.Tensor:
    """A noisy copy of (N, H, W) disparity maps: ``fraction`` of the maps get ``n_blobs``
    elliptical regions whose values are replaced by a wrong constant (the gross, region-wise
    mistakes a teacher's pseudo-labels make), each blob ~2-8% of the image."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction={fraction} must be in [0, 1]")
    rng = np.random.default_rng(seed)
    out = disparity.clone()
    n, h, w = out.shape
    yy, xx = np.mgrid[0:h, 0:w]
    for i in np.nonzero(rng.random(n) < fraction)[0]:
        lo, hi = float(out[i].min()), float(out[i].max())
        for _ in range(n_blobs):
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            ry, rx = rng.uniform(0.08, 0.2) * h, rng.uniform(0.08, 0.2) * w
            blob = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
            out[i][torch.from_numpy(blob)] = float(rng.uniform(lo, hi + (hi - lo)))
    return out
