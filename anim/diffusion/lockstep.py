"""Lockstep sampling: K compatible diffusion jobs denoised together, one batched UNet call per step.

Overnight queues hold many jobs on the same model and size. Rendering K of them in lockstep turns
K small UNet calls per step into one call of batch 2K (CFG), which keeps a GPU busy. Each item keeps
everything that makes its frame its own: a fresh scheduler instance, a CPU generator seeded with its
seed, its timesteps (img2img picks them from strength = denoise exactly like diffusers'
StableDiffusionImg2ImgPipeline, with anim.diffusion.diffuse.effective_steps), its init latents and noise, its
CFG scale. Only the UNet forward is shared; items with fewer steps drop out of later batches.

The random stream of each item is drawn in the pipeline's order (VAE posterior sample, then the
init noise, then the scheduler's per-step noise), so K=1 reproduces anim.diffusion.diffuse.Diffuser. With K>1
only the UNet's float summation order may change (batching), so frames agree to ~1e-6, and the same
group composition and order repeats bit for bit.

ControlNet units (Item.controls, anim.diffusion.diffuse.ControlInput) are per item too: each step every distinct
ControlNet runs once on the rows of the items that use it, and each item's residuals are scaled by its own
weight and guidance window (anim.diffusion.lockstep_control), so K=1 with controls also reproduces Diffuser bit for bit.
Items with and without controls can share a group.

Not in this version: SDXL, UNets with a guidance embedding (LCM), and guess-mode ControlNets
(global_pool_conditions).
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass, field

import torch

from anim.diffusion.diffuse import ControlInput, check_size, effective_steps, fit_image
from anim.diffusion.lockstep_control import (
    check_controls,
    prepare_units,
    step_residuals,
)
from anim.diffusion.samplers import make_scheduler, seed_scheduler
from anim.errors import ModelError


@dataclass
class Item:
    """One job of a lockstep group: the same arguments Diffuser.__call__ takes, so Diffuser(**vars(item)) works."""

    init: torch.Tensor | None
    cond: torch.Tensor
    uncond: torch.Tensor
    denoise: float
    cfg_scale: float
    steps: int
    sampler: str
    seed: int
    width: int
    height: int
    controls: list[ControlInput] | None = None


@dataclass
class _Track:
    """The running state of one item: its scheduler, generator, timesteps, latents and embeddings."""

    scheduler: object
    generator: torch.Generator
    timesteps: list
    latents: torch.Tensor
    embeds: torch.Tensor  # cat([uncond, cond]) with CFG, cond alone without
    cfg_scale: float
    step_kwargs: dict = field(default_factory=dict)
    units: list = field(default_factory=list)  # anim.diffusion.lockstep_control.TrackUnit per ControlNet unit
    cursor: int = 0

    @property
    def cfg(self) -> bool:
        """Classifier-free guidance runs when the scale exceeds 1 (as in the diffusers pipelines)."""
        return self.cfg_scale > 1.0

    @property
    def rows(self) -> int:
        """UNet batch rows this item takes: 2 with CFG (uncond, cond), else 1."""
        return 2 if self.cfg else 1

    @property
    def done(self) -> bool:
        return self.cursor >= len(self.timesteps)


def lockstep_compatible(a: Item, b: Item, *, exact: bool = False) -> bool:
    """True when a and b can share a lockstep group: same width and height.

    Timesteps, samplers, CFG and txt2img/img2img are per item, so they may differ. With exact=True
    the prompt embeddings must also have the same token count, so no padding alters either frame
    relative to its solo render.
    """
    same_size = (int(a.width), int(a.height)) == (int(b.width), int(b.height))
    if not exact:
        return same_size
    return same_size and a.cond.shape[1] == b.cond.shape[1]


class LockstepDiffuser:
    """Callable rendering a group of Items in lockstep; counts groups in `calls`, UNet calls in `unet_calls`,
    ControlNet forwards in `control_calls`.

    encoder (a PromptEncoder) pads conditionings of different chunk counts with empty-prompt chunks,
    as PromptEncoder.pad_to does; without one, a group whose embeddings differ in length is refused.
    batch_decode decodes all finished latents in one VAE call (else one call per item).
    """

    def __init__(self, models, *, encoder=None, batch_decode: bool = True) -> None:
        if models.is_sdxl:
            raise ModelError(f"model {models.name} is SDXL; lockstep rendering supports SD1.5 models only")
        if getattr(models.unet.config, "time_cond_proj_dim", None) is not None:
            raise ModelError(f"model {models.name} has a guidance-embedding UNet (LCM); not supported in lockstep")
        self.models = models
        self.encoder = encoder
        self.batch_decode = batch_decode
        self.calls = 0
        self.unet_calls = 0
        self.control_calls = 0
        self.last_steps_run = 0  # lockstep iterations (UNet calls) of the last group

    def __call__(self, items: list[Item]) -> list[torch.Tensor]:
        """(1,3,H,W) float32 in [0,1] per item, in order; denoise <= 0 img2img items return their init."""
        if not items:
            return []
        self._check_group(items)
        results: list[torch.Tensor | None] = [it.init if _is_passthrough(it) else None for it in items]
        live = [i for i, it in enumerate(items) if results[i] is None]
        if not live:
            return results
        embeds = self._padded_embeds([items[i] for i in live])
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Should have ta>=t0")  # torchsde, harmless in img2img
            tracks = [self._prepare(items[i], cond, uncond) for i, (cond, uncond) in zip(live, embeds)]
            self.last_steps_run = self._denoise(tracks)
            images = self._decode([t.latents for t in tracks])
        for i, image in zip(live, images):
            results[i] = image
        self.calls += 1
        return results

    # ------------------------------------------------------------ checks and prompts

    def _check_group(self, items: list[Item]) -> None:
        """One size for the whole group, valid sizes, cond/uncond pairs of equal shape, valid control units."""
        first = items[0]
        for it in items:
            if not lockstep_compatible(first, it):
                raise ValueError(f"lockstep items must share width/height: {first.width}x{first.height} "
                                 f"vs {it.width}x{it.height}")
            check_size(it.width, it.height)
            if it.cond.shape != it.uncond.shape:
                raise ModelError(f"cond {tuple(it.cond.shape)} and uncond {tuple(it.uncond.shape)} differ; "
                                 "build them with PromptEncoder.pair")
            check_controls(it.controls)

    def _padded_embeds(self, items: list[Item]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each item's (cond, uncond), padded with empty-prompt chunks to the group's longest."""
        length = max(it.cond.shape[1] for it in items)
        if all(it.cond.shape[1] == length for it in items):
            return [(it.cond, it.uncond) for it in items]
        if self.encoder is None:
            raise ValueError("lockstep items have prompt embeddings of different lengths "
                             f"({sorted({it.cond.shape[1] for it in items})} tokens); pass encoder= to pad them")
        return [(self.encoder.pad_to(it.cond, length), self.encoder.pad_to(it.uncond, length)) for it in items]

    # ------------------------------------------------------------ per-item set-up

    def _prepare(self, item: Item, cond: torch.Tensor, uncond: torch.Tensor) -> _Track:
        """Scheduler, generator, timesteps and starting latents of one item (img2img or txt2img)."""
        models = self.models
        scheduler = make_scheduler(item.sampler, models.scheduler_config)
        seed_scheduler(scheduler, item.seed)
        generator = torch.Generator("cpu").manual_seed(int(item.seed))
        dtype = cond.dtype
        if item.init is None:
            timesteps = _txt2img_timesteps(scheduler, item.steps, models.device)
            latents = self._noise_latents(item, scheduler, generator, dtype)
        else:
            timesteps = _img2img_timesteps(scheduler, item.steps, item.denoise, models.device)
            latents = self._init_latents(item, scheduler, generator, timesteps, dtype)
        cfg = item.cfg_scale > 1.0
        embeds = torch.cat([uncond, cond]) if cfg else cond
        units = prepare_units(item.controls, width=item.width, height=item.height, cfg=cfg, device=models.device,
                              vae_scale_factor=self._vae_scale_factor())
        return _Track(scheduler=scheduler, generator=generator, timesteps=list(timesteps), latents=latents,
                      embeds=embeds.to(models.device), cfg_scale=float(item.cfg_scale),
                      step_kwargs=_step_kwargs(scheduler, generator), units=units)

    def _noise_latents(self, item: Item, scheduler, generator, dtype) -> torch.Tensor:
        """txt2img start: unit noise from the item's generator, scaled by the scheduler's init sigma."""
        from diffusers.utils.torch_utils import randn_tensor

        factor = self._vae_scale_factor()
        shape = (1, self.models.unet.config.in_channels, int(item.height) // factor, int(item.width) // factor)
        noise = randn_tensor(shape, generator=generator, device=self.models.device, dtype=dtype)
        return noise * scheduler.init_noise_sigma

    def _init_latents(self, item: Item, scheduler, generator, timesteps, dtype) -> torch.Tensor:
        """img2img start: VAE posterior sample of the init, then noise added at the first timestep."""
        from diffusers.utils.torch_utils import randn_tensor

        vae = self.models.vae
        image = 2.0 * fit_image(item.init, item.width, item.height) - 1.0  # [0,1] -> [-1,1]
        image = image.to(device=self.models.device, dtype=dtype)
        latents = vae.encode(image).latent_dist.sample(generator) * vae.config.scaling_factor
        noise = randn_tensor(latents.shape, generator=generator, device=self.models.device, dtype=dtype)
        return scheduler.add_noise(latents, noise, timesteps[:1].repeat(1))

    def _vae_scale_factor(self) -> int:
        """Pixels per latent (8 for SD): 2 ** (VAE blocks - 1)."""
        return 2 ** (len(self.models.vae.config.block_out_channels) - 1)

    # ------------------------------------------------------------ the lockstep loop

    def _denoise(self, tracks: list[_Track]) -> int:
        """Step every unfinished track together until all are done; returns the number of UNet calls."""
        calls = 0
        while True:
            active = [t for t in tracks if not t.done]
            if not active:
                return calls
            self._step(active)
            calls += 1

    def _step(self, active: list[_Track]) -> None:
        """One batched UNet call (with the tracks' ControlNet residuals), then each track's CFG and scheduler step."""
        inputs, times, embeds = [], [], []
        for tr in active:
            t = tr.timesteps[tr.cursor]
            sample = torch.cat([tr.latents] * 2) if tr.cfg else tr.latents
            inputs.append(tr.scheduler.scale_model_input(sample, t))
            times.append(t.reshape(1).expand(tr.rows).to(self.models.device))
            embeds.append(tr.embeds)
        times = _common_dtype(times)
        down, mid = self._control_residuals(active, inputs, times, embeds)
        noise = self.models.unet(torch.cat(inputs), torch.cat(times), encoder_hidden_states=torch.cat(embeds),
                                 down_block_additional_residuals=down, mid_block_additional_residual=mid,
                                 return_dict=False)[0]
        self.unet_calls += 1
        for tr, pred in zip(active, noise.split([tr.rows for tr in active])):
            if tr.cfg:
                uncond, text = pred.chunk(2)
                pred = uncond + tr.cfg_scale * (text - uncond)
            t = tr.timesteps[tr.cursor]
            tr.latents = tr.scheduler.step(pred, t, tr.latents, **tr.step_kwargs, return_dict=False)[0]
            tr.cursor += 1

    def _control_residuals(self, active: list[_Track], inputs, times, embeds):
        """This step's ControlNet (down, mid) residuals for the batch, counting forwards; (None, None) if none."""
        down, mid, forwards = step_residuals(active, inputs, times, embeds)
        self.control_calls += forwards
        return down, mid

    # ------------------------------------------------------------ decoding

    def _decode(self, latents: list[torch.Tensor]) -> list[torch.Tensor]:
        """Latents -> (1,3,H,W) float32 images in [0,1]: one batched VAE call, or one per item."""
        vae = self.models.vae
        groups = [torch.cat(latents)] if self.batch_decode else latents
        images = []
        for group in groups:
            decoded = vae.decode(group / vae.config.scaling_factor, return_dict=False)[0]
            decoded = (decoded * 0.5 + 0.5).clamp(0, 1)  # [-1,1] -> [0,1] as the pipelines' postprocess
            images.extend(decoded.split(1))
        return [im.to(self.models.device, torch.float32).clamp(0.0, 1.0) for im in images]


# ---------------------------------------------------------------- helpers


def _is_passthrough(item: Item) -> bool:
    """img2img with nothing to denoise: the init is the result (as in Diffuser)."""
    return item.init is not None and item.denoise <= 0


def _txt2img_timesteps(scheduler, steps: int, device) -> torch.Tensor:
    """The full schedule of `steps` steps."""
    scheduler.set_timesteps(max(1, int(steps)), device=device)
    return scheduler.timesteps


def _img2img_timesteps(scheduler, steps: int, denoise: float, device) -> torch.Tensor:
    """The tail of the schedule that strength = denoise keeps, as StableDiffusionImg2ImgPipeline picks it."""
    count = effective_steps(steps, float(denoise))
    strength = min(float(denoise), 1.0)
    scheduler.set_timesteps(count, device=device)
    kept = min(int(count * strength), count)
    start = max(count - kept, 0) * scheduler.order
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start)
    return scheduler.timesteps[start:]


def _step_kwargs(scheduler, generator: torch.Generator) -> dict:
    """scheduler.step extras the pipelines pass: the item's generator and eta=0 where accepted."""
    accepted = set(inspect.signature(scheduler.step).parameters)
    kwargs = {}
    if "generator" in accepted:
        kwargs["generator"] = generator
    if "eta" in accepted:
        kwargs["eta"] = 0.0
    return kwargs


def _common_dtype(times: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per-sample timesteps in one dtype (samplers differ: int64 for DDIM, float for Euler)."""
    dtypes = {t.dtype for t in times}
    if len(dtypes) == 1:
        return times
    return [t.to(torch.float32) for t in times]
