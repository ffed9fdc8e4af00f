"""core.diffusion: our DDIM loop vs diffusers' DDIMPipeline, inversion, SDEdit, CFG, the
gradient hook, training, and bad input."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMPipeline
from torch import nn

from paperlab.core.device import torch_threads
from paperlab.core.diffusion import (
    ddim_invert,
    ddim_sample,
    diffusion_loss,
    gradient_guidance,
    make_scheduler,
    output_to_eps,
    predict_eps,
    sdedit,
    tiny_unet,
    train_diffusion,
)


class GaussianDenoiser(nn.Module):
    """The exact noise predictor for data ~ N(mu, sd^2 I): a denoiser whose DDIM ODE is smooth,
    so inversion can be checked without training one."""

    def __init__(self, mu: float, sd: float) -> None:
        super().__init__()
        self.mu, self.sd = mu, sd
        self.alphas_cumprod = make_scheduler("ddim").alphas_cumprod
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x, t, cond=None):
        ab = self.alphas_cumprod[t].view(-1, *[1] * (x.dim() - 1))
        return (1 - ab).sqrt() * (x - ab.sqrt() * self.mu) / (ab * self.sd**2 + 1 - ab)


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):  # tiny models: per-op overhead, and a busy machine hates 2 threads
        yield


@pytest.fixture
def unet():
    torch.manual_seed(0)
    return tiny_unet(image_size=8, widths=(8, 16)).eval()


@pytest.mark.parametrize(
    ("clip_sample", "prediction_type"),
    [(False, "epsilon"), (True, "epsilon"), (False, "v_prediction"), (True, "sample")],
)
def test_ddim_sample_matches_diffusers_pipeline(unet, clip_sample, prediction_type):
    scheduler = make_scheduler("ddim", clip_sample=clip_sample, prediction_type=prediction_type)
    x_T = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    ours = ddim_sample(unet, (2, 3, 8, 8), steps=10, x_T=x_T, scheduler=scheduler)
    pipe = DDIMPipeline(unet=unet, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    gen = torch.Generator().manual_seed(3)
    ref = pipe(batch_size=2, generator=gen, num_inference_steps=10, eta=0.0, output_type="np")
    ours01 = (ours / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    assert abs(ours01 - ref.images).max() < 1e-4


def test_ddim_inversion_then_sampling_reconstructs():
    model = GaussianDenoiser(0.2, 0.4)
    x0 = (0.2 + 0.4 * torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))).clamp(
        -1, 1
    )
    errors = []
    for steps in (20, 100):
        x_T = ddim_invert(model, x0, steps=steps)
        assert 0.8 < x_T.std() < 1.2  # a noise-like latent
        errors.append((ddim_sample(model, x0.shape, steps=steps, x_T=x_T) - x0).abs().max())
    assert errors[1] < 0.05 and errors[1] < errors[0]  # first-order error: shrinks with steps


def test_sdedit_strength_zero_keeps_input_and_one_ignores_it(unet):
    x0 = torch.rand(2, 3, 8, 8) * 2 - 1
    assert torch.equal(sdedit(unet, x0, strength=0.0, steps=10), x0)
    a = sdedit(unet, x0, strength=1.0, steps=10, seed=4)
    b = sdedit(unet, -x0, strength=1.0, steps=10, seed=4)
    assert torch.equal(a, b)
    assert torch.allclose(a, ddim_sample(unet, x0.shape, steps=10, seed=4))
    mid = sdedit(unet, x0, strength=0.5, steps=10, seed=4)
    assert not torch.allclose(mid, a)


def test_cfg_scale_one_is_the_conditional_prediction():
    torch.manual_seed(0)
    model = tiny_unet(image_size=8, widths=(8, 16), num_classes=3).eval()
    cond, null = torch.tensor([0, 1]), torch.tensor(2)
    plain = ddim_sample(model, (2, 3, 8, 8), steps=4, cond=cond)
    assert torch.equal(plain, ddim_sample(model, (2, 3, 8, 8), steps=4, cond=cond, null_cond=null))
    guided = ddim_sample(model, (2, 3, 8, 8), steps=4, cond=cond, null_cond=null, guidance_scale=3)
    assert not torch.allclose(plain, guided)
    # scale s: eps_u + s (eps_c - eps_u), checked on one step's prediction
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        eps_c, eps_u = predict_eps(model, x, 500, cond), predict_eps(model, x, 500, null.expand(2))
    from paperlab.core.diffusion import cfg_eps

    with torch.no_grad():
        ours = cfg_eps(model, x, 500, cond, null, 3.0)
    assert torch.allclose(ours, eps_u + 3.0 * (eps_c - eps_u), atol=1e-5)


def test_gradient_hook_moves_samples_down_the_loss():
    model = GaussianDenoiser(0.0, 0.5)
    target = torch.full((2, 3, 8, 8), 0.6)

    def loss_fn(x_t, t):  # pull the samples towards a bright image
        return ((x_t - target) ** 2).sum()

    hook = gradient_guidance(loss_fn, weight=0.5, steps_range=(0, 999))
    plain = ddim_sample(model, (2, 3, 8, 8), steps=10, seed=1)
    guided = ddim_sample(model, (2, 3, 8, 8), steps=10, seed=1, guidance=hook)
    assert ((guided - target) ** 2).mean() < 0.5 * ((plain - target) ** 2).mean()
    # outside steps_range (or at weight 0) the hook leaves eps alone
    off = gradient_guidance(loss_fn, weight=0.5, steps_range=(2000, 3000))
    assert torch.equal(ddim_sample(model, (2, 3, 8, 8), steps=10, seed=1, guidance=off), plain)
    zero = gradient_guidance(loss_fn, weight=lambda t: 0.0, steps_range=(0, 999))
    assert torch.equal(ddim_sample(model, (2, 3, 8, 8), steps=10, seed=1, guidance=zero), plain)


def test_training_lowers_the_loss():
    torch.manual_seed(0)
    model = tiny_unet(image_size=8, widths=(8, 16), attention=False)
    images = -torch.ones(16, 3, 8, 8)
    images[:, :, 2:6, 2:6] = 1.0  # one bright square on black
    scheduler = make_scheduler("ddpm")

    def held_out():
        with torch.no_grad():
            gen = torch.Generator().manual_seed(99)
            return float(diffusion_loss(model, images, scheduler, generator=gen))

    before = held_out()
    history = train_diffusion(
        model, images, steps=60, batch_size=16, lr=3e-3, seed=0, progress=False
    )
    assert len(history["loss"]) == 60
    assert held_out() < 0.6 * before


@pytest.mark.parametrize("prediction_type", ["sample", "v_prediction"])
def test_loss_target_and_eps_conversion_follow_the_prediction_type(prediction_type):
    scheduler = make_scheduler("ddpm", prediction_type=prediction_type)
    x0 = torch.rand(4, 3, 8, 8) * 2 - 1

    def exact(noise, t):  # what a perfect model of this prediction type outputs
        return x0 if prediction_type == "sample" else scheduler.get_velocity(x0, noise, t)

    # the same draws as diffusion_loss (t, then the noise) from the same generator
    gen = torch.Generator().manual_seed(7)
    t = torch.randint(1000, (4,), generator=gen)
    noise = torch.randn(4, 3, 8, 8, generator=gen)
    out = exact(noise, t)
    oracle = lambda x_t, tt, cond: out  # noqa: E731
    loss = diffusion_loss(oracle, x0, scheduler, generator=torch.Generator().manual_seed(7))
    assert float(loss) < 1e-10
    # ... and its output maps back to the noise
    t = torch.tensor([10, 300, 600, 990])
    x_t = scheduler.add_noise(x0, noise, t)
    out = exact(noise, t)
    for i in range(4):
        eps = output_to_eps(scheduler, out[i], x_t[i], int(t[i]))
        assert torch.allclose(eps, noise[i], atol=1e-3)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda m, x: sdedit(m, x, strength=1.5), "strength"),
        (lambda m, x: sdedit(m, x, strength=-0.1), "strength"),
        (lambda m, x: ddim_sample(m, (2, 3, 8, 8), steps=0), "steps"),
        (lambda m, x: ddim_invert(m, x, steps=-1), "steps"),
        (lambda m, x: ddim_sample(m, (3, 8, 8)), "shape"),
        (lambda m, x: ddim_sample(m, (2, 3, 8, 8), x_T=torch.zeros(1, 3, 8, 8)), "x_T"),
        (lambda m, x: ddim_invert(m, x[0]), "x0"),
        (lambda m, x: ddim_sample(m, (2, 3, 8, 8), guidance_scale=2.0), "null_cond"),
        (lambda m, x: ddim_sample(m, (2, 3, 8, 8), timesteps=[5, 10]), "timesteps"),
        (lambda m, x: make_scheduler("ddim", prediction_type="x0"), "prediction_type"),
        (lambda m, x: train_diffusion(m, x, steps=0, batch_size=2, lr=1e-3, seed=0), "steps"),
        (
            lambda m, x: gradient_guidance(lambda x, t: x.sum(), weight=1, steps_range=(5, 1)),
            "steps_range",
        ),
    ],
)
def test_bad_input_names_the_argument(unet, call, name):
    with pytest.raises(ValueError, match=name):
        call(unet, torch.zeros(2, 3, 8, 8))


def test_weighted_loss_is_the_plain_loss_at_constant_weight_and_weighs_pixels_otherwise():
    class Zero(torch.nn.Module):
        def forward(self, x, t, cond=None):
            return torch.zeros_like(x)

    images = torch.randn(2, 3, 8, 8)
    scheduler = make_scheduler("ddpm", prediction_type="sample")  # target x0: error = images²

    def loss(weight=None):
        gen = torch.Generator().manual_seed(0)
        return diffusion_loss(Zero(), images, scheduler, generator=gen, weight=weight)

    torch.testing.assert_close(loss(torch.full((2, 1, 8, 8), 2.0)), loss())
    w = torch.ones(1, 1, 8, 8)
    w[..., :4, :] = 5.0
    torch.testing.assert_close(loss(w), (images**2 * w).mean() / w.mean())
    with pytest.raises(ValueError, match="weight"):
        loss(-w)
