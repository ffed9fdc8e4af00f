"""Diffusion on diffusers: tiny UNets, DDPM training, DDIM sampling and inversion, SDEdit,
classifier-free guidance, guidance by gradient, LoRA (peft) and an attention recorder.

    unet = tiny_unet(image_size=16, num_classes=5)               # diffusers UNet2DModel
    history = train_diffusion(unet, images, steps=500, batch_size=32, lr=2e-3, seed=0, cond=labels)
    x = ddim_sample(unet, (8, 3, 16, 16), steps=50, cond=labels[:8], null_cond=torch.tensor(4),
                    guidance_scale=3.0)                           # CFG, images in [-1, 1]
    x_T = ddim_invert(unet, x, steps=50, cond=labels[:8])          # DDIM inversion (eta 0)
    edited = sdedit(unet, x, strength=0.4)                        # noise to 0.4 T, denoise

Images are float tensors (B, C, H, W) in [-1, 1], clips (B, C, F, H, W). The models are plain
diffusers modules: :func:`tiny_unet` gives a ``UNet2DModel`` (class-conditioned through
``num_class_embeds``) or a ``UNet2DConditionModel`` (conditioned on ``encoder_hidden_states``);
:func:`tiny_motion_unet` an AnimateDiff-style ``UNetMotionModel`` (spatial blocks + temporal
"motion modules"). :func:`predict_eps` calls any of them, and any ``nn.Module`` whose
``forward(x_t, t, cond)`` returns the noise (or an object with ``.sample``). Because nothing
here is specific to the tiny configs, the same functions drive the real checkpoints on a GPU:
``UNet2DConditionModel.from_pretrained(<SD-1.5 or SD-2 repo>, subfolder="unet")`` on VAE
latents with CLIP text embeddings as ``cond`` (SDEdit, DDIM inversion, CFG, LoRA via
:func:`add_lora`, attention through :class:`AttentionRecorder`), and AnimateDiff's
``UNetMotionModel.from_unet2d(unet, MotionAdapter.from_pretrained(...))`` on (B, 4, F, h, w)
latents. (Latents, the VAE and the text encoder are the caller's: this module works on whatever
tensor the UNet denoises. SD-2's v-prediction checkpoint: ``make_scheduler(...,
prediction_type="v_prediction")``.)

The samplers follow DDIM (Song et al. 2021, Eq. 12) on the scheduler's ``alphas_cumprod``:
they agree with diffusers' ``DDIMScheduler.step`` on its own timesteps (a test checks it against
``DDIMPipeline``) and also accept any decreasing timestep list (MotionClone's uneven spacing).
"""

from paperlab.core.diffusion.attention import AttentionRecorder, add_lora
from paperlab.core.diffusion.models import (
    PREDICTION_TYPES,
    cfg_eps,
    make_scheduler,
    output_to_eps,
    predict_eps,
    tiny_motion_unet,
    tiny_unet,
)
from paperlab.core.diffusion.sampling import (
    Guidance,
    ddim_invert,
    ddim_sample,
    ddim_step,
    ddim_timesteps,
    diffusion_loss,
    gradient_guidance,
    sdedit,
    train_diffusion,
)

__all__ = [
    "AttentionRecorder",
    "Guidance",
    "add_lora",
    "cfg_eps",
    "ddim_invert",
    "ddim_sample",
    "ddim_step",
    "ddim_timesteps",
    "diffusion_loss",
    "gradient_guidance",
    "PREDICTION_TYPES",
    "make_scheduler",
    "output_to_eps",
    "predict_eps",
    "sdedit",
    "tiny_motion_unet",
    "tiny_unet",
    "train_diffusion",
]
