"""Scheduler names: diffusers classes and A1111 sampler names, both ways.

Users coming from AUTOMATIC1111 know samplers as "DPM++ 2M Karras"; diffusers
knows DPMSolverMultistepScheduler(use_karras_sigmas=True).  `lookup()` turns
either spelling into a class and constructor kwargs; `describe()` turns a
scheduler back into the A1111 "Sampler" and "Schedule type" for metadata.
The mapping follows the table in diffusers' scheduler docs.
"""

import difflib
import json

from .errors import InputError

__all__ = ["table", "lookup", "build", "check_steps", "describe", "jsonable_config", "is_flow"]

_KARRAS = "use_karras_sigmas"

# A1111 sampler -> (class, kwargs).  Karras variants are added below.
_A1111 = {
    "Euler": ("EulerDiscreteScheduler", {}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Heun": ("HeunDiscreteScheduler", {}),
    "LMS": ("LMSDiscreteScheduler", {}),
    "DPM2": ("KDPM2DiscreteScheduler", {}),
    "DPM2 a": ("KDPM2AncestralDiscreteScheduler", {}),
    # "2M": second-order multistep, whatever order the model's config chose.
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++",
                                                 "solver_order": 2}),
    "DPM++ 2M SDE": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++",
                                                     "solver_order": 2}),
    "DPM++ SDE": ("DPMSolverSinglestepScheduler", {"algorithm_type": "dpmsolver++"}),
    # A1111's DDIM and PLMS (from CompVis) neither clip the predicted sample
    # nor end on alpha = 1, as SD's scheduler configs say too; configs that
    # leave these out would get diffusers' class defaults (both True).
    "DDIM": ("DDIMScheduler", {"clip_sample": False, "set_alpha_to_one": False}),
    # PNDM's Runge-Kutta warm-up costs extra UNet calls and fails below 4
    # steps; A1111's PLMS (and diffusers' table) is the plain linear
    # multistep method.
    "PLMS": ("PNDMScheduler", {"skip_prk_steps": True, "set_alpha_to_one": False}),
    # A1111's own UniPC, with its default options (order 3, variant bh1,
    # time-uniform steps from 999 down to the last trained noise level).
    "UniPC": ("UniPCMultistepScheduler", {"solver_order": 3, "solver_type": "bh1",
                                          "timestep_spacing": "linspace",
                                          "final_sigmas_type": "sigma_min"}),
    "LCM": ("LCMScheduler", {}),
    "DDPM": ("DDPMScheduler", {}),
    "DEIS": ("DEISMultistepScheduler", {"algorithm_type": "deis"}),
    "TCD": ("TCDScheduler", {}),
}
# Samplers whose class takes use_karras_sigmas: "X" means it off, "X Karras" on.
_KARRAS_OK = {"Euler", "Heun", "LMS", "DPM2", "DPM2 a", "DPM++ 2M", "DPM++ 2M SDE",
              "DPM++ SDE", "UniPC", "DEIS"}
# A1111's "Uniform" schedule for the samplers it runs through k-diffusion,
# as the timestep spacing that gives it here.  k-diffusion spaces the
# timesteps evenly over the trained range, 999 to 0: diffusers' "linspace"
# (the DPM++ classes' linspace differs only in the last nonzero sigma).
# A1111's DPM2 and DPM2 a drop the next-to-last sigma, which "trailing"
# gives.  A model's own "leading" spacing (SD1.5's and SDXL's configs)
# starts lower: at 4 steps at timestep 751 instead of 999.  The Karras
# variants take "linspace" so that Euler, Heun, LMS and DPM2, which build
# Karras sigmas from the timesteps they sample, start at the model's
# sigma_max.  (None: DPM++ SDE's class has no spacing setting and always
# starts at 999.)  A1111 v1.10's "Automatic" is a different schedule per
# sampler (Karras for DPM++ 2M, ...), so metadata names the one that ran.
_UNIFORM = {"Euler": "linspace", "Euler a": "linspace", "Heun": "linspace", "LMS": "linspace",
            "DPM2": "trailing", "DPM2 a": "trailing", "DPM++ 2M": "linspace",
            "DPM++ 2M SDE": "linspace", "DPM++ SDE": None}
_KARRAS_FROM_TIMESTEPS = {"Euler", "Heun", "LMS", "DPM2", "DPM2 a"}
# A1111's "DDIM" schedule type, timesteps 1, 1 + 1000 // n, ... where n
# divides 1000, is "leading" with steps_offset 1 for these.
_DDIM_TYPE_OK = {"Euler", "Euler a", "Heun", "LMS"}
# Short names for diffusers schedulers A1111 does not have: never written
# as an A1111 sampler (A1111 would read them as its first sampler).
_NOT_A1111 = {"DDPM", "DEIS", "TCD"}
# A name means its own settings, whatever the model's default scheduler
# chose: these are reset unless the name sets them (dropped where the class
# does not take them).
_RESET = {"use_karras_sigmas": False, "use_exponential_sigmas": False,
          "use_beta_sigmas": False}

# Flow-matching models (SD3) only work with flow-matching schedulers.
_FLOW = {
    "Euler": ("FlowMatchEulerDiscreteScheduler", {}),
    "Heun": ("FlowMatchHeunDiscreteScheduler", {}),
    "LCM": ("FlowMatchLCMScheduler", {}),
}

_ALIASES = {"PNDM": "PLMS"}


def is_flow(cls_name):
    return cls_name.startswith("FlowMatch")


def _entries():
    out = {}
    for name, (cls, kw) in _A1111.items():
        a1111 = None if name in _NOT_A1111 else name
        own = dict(kw)
        if _UNIFORM.get(name):
            own["timestep_spacing"] = _UNIFORM[name]
        st = None if a1111 is None else "Uniform" if name in _UNIFORM else "Automatic"
        if name in _KARRAS_OK:
            out[name] = (cls, dict(own, **{_KARRAS: False}), a1111, st)
            karras = dict(kw, **{_KARRAS: True})
            if _UNIFORM.get(name):
                karras["timestep_spacing"] = "linspace"
            out[name + " Karras"] = (cls, karras, a1111, a1111 and "Karras")
        else:
            out[name] = (cls, own, a1111, st)
    for alias, target in _ALIASES.items():
        out[alias] = out[target]
    classes = {}
    for name, (cls, kw, a1111, st) in list(out.items()):
        classes.setdefault(cls, (cls, {}, None, None))
    for cls, _ in _FLOW.values():
        classes[cls] = (cls, {}, None, None)
    out.update(classes)
    return out


_TABLE = _entries()


def table():
    """dict name -> dict(cls, kwargs, a1111, schedule_type) for api.schedulers()."""
    return {name: {"cls": cls, "kwargs": dict(kw), "a1111": a, "schedule_type": st}
            for name, (cls, kw, a, st) in _TABLE.items()}


def _unknown(name, family):
    names = sorted(_TABLE) if family != "sd3" else sorted(
        set(_FLOW) | {c for c, _ in _FLOW.values()})
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
    low = [n for n in names if n.lower() == name.lower()]
    hint = close or low
    return InputError("Unknown scheduler %r.%s Known names include A1111 samplers (\"Euler a\", "
                      "\"DPM++ 2M Karras\", ...) and diffusers class names; see sd_schedulers()."
                      % (name, " Did you mean %s?" % ", ".join('"%s"' % h for h in hint)
                         if hint else ""))


def lookup(name, family="sd15"):
    """Return (class_name, kwargs) for a scheduler name and model family."""
    if not isinstance(name, str) or not name.strip():
        raise InputError("scheduler must be a non-empty string.")
    key = name.strip()
    if key not in _TABLE:
        matches = [k for k in _TABLE if k.lower() == key.lower()]
        if not matches:
            raise _unknown(key, family)
        key = matches[0]
    if family == "sd3":
        if key in _FLOW:
            cls, kw = _FLOW[key]
            return cls, dict(kw)
        cls = _TABLE[key][0]
        if not is_flow(cls):
            raise InputError("Scheduler %r does not work with SD3 models: they are "
                             "flow-matching models and need a flow-matching scheduler: %s."
                             % (name, ", ".join(sorted(set(_FLOW) | {c for c, _ in
                                                                     _FLOW.values()}))))
        return cls, {}
    cls, kw, _, _ = _TABLE[key]
    if is_flow(cls):
        raise InputError("Scheduler %r is for flow-matching models (SD3); this is a %s model."
                         % (name, family))
    return cls, dict(kw)


def build(default, name=None, config=None, family="sd15"):
    """See _build; a scheduler whose optional dependency is missing (LMS
    needs scipy) is an InputError that names the package."""
    try:
        return _build(default, name, config, family)
    except ImportError as e:
        raise InputError("Scheduler %r needs a Python package that is not installed: %s"
                         % (name or (config or {}).get("_class_name"),
                            " ".join(str(e).split()))) from e
    except (ValueError, NotImplementedError) as e:
        # diffusers' own refusals of a setting combination.
        raise InputError("Scheduler %r cannot be built for this model: %s"
                         % (name or (config or {}).get("_class_name"),
                            " ".join(str(e).split()))) from e


def check_steps(scheduler, steps):
    """InputError unless `scheduler` can run `steps` steps. Past the model's
    training timesteps, or past what a scheduler allows (LCM and TCD: their
    original_inference_steps), diffusers fails mid-generation with raw
    ValueErrors or IndexErrors; a trial set_timesteps() on a copy finds the
    scheduler's own refusals first."""
    import copy
    name = type(scheduler).__name__
    limit = scheduler.config.get("num_train_timesteps")
    if limit and steps > int(limit):
        raise InputError("steps must be at most %d for %s (the model's training timesteps), "
                         "not %d." % (int(limit), name, steps))
    if is_flow(name):
        return  # their set_timesteps() may need the pipeline's own arguments (mu)
    if name == "PNDMScheduler" and not scheduler.config.get("skip_prk_steps") and steps < 4:
        # Its Runge-Kutta warm-up takes 3 steps (diffusers says "operands
        # could not be broadcast").
        raise InputError("PNDMScheduler with its Runge-Kutta warm-up needs at least 4 steps, "
                         "not %d; \"PLMS\" runs without it." % steps)
    trial = copy.deepcopy(scheduler)
    try:
        trial.set_timesteps(steps, device="cpu")
    except (ValueError, IndexError) as e:
        raise InputError("%s cannot run %d steps: %s" % (name, steps, " ".join(str(e).split()))) \
            from e
    # A steps_offset (SD1.5's DDIM and PNDM: 1) shifts "leading" timesteps
    # up by one, so all num_train_timesteps steps would reach one past the
    # last trained timestep: schedulers that index alphas_cumprod by
    # timestep (those without sigmas) fail on the first step.
    timesteps = getattr(trial, "timesteps", None)
    if limit and timesteps is not None and len(timesteps) > 0 and \
            not hasattr(trial, "sigmas") and float(timesteps.max()) >= int(limit):
        raise InputError("%s cannot run %d steps with this model: its timesteps would go past "
                         "the %d it was trained on; use fewer steps." % (name, steps, int(limit)))


def _build(default, name=None, config=None, family="sd15"):
    """A new scheduler for one call; `default` (the pipeline's) is not touched.

    name None + config None: a fresh copy of the default.
    config (a dict as stored in metadata) with name = a class name: rebuilt
    exactly from that config, for reproduction.
    """
    import diffusers
    if config is not None:
        cfg = dict(config)
        cls_name = name or cfg.get("_class_name") or type(default).__name__
        if cls_name not in _TABLE and hasattr(diffusers, cls_name) and cls_name.endswith("Scheduler"):
            cls = getattr(diffusers, cls_name)
        else:
            cls = getattr(diffusers, lookup(cls_name, family)[0])
        if (family == "sd3") != is_flow(cls.__name__):
            raise InputError("Scheduler %s does not fit a %s model." % (cls.__name__, family))
        # Integers may come back from R as doubles (1000.0); the schedulers
        # compare and index with them, so give them back their int type.
        return cls.from_config(_fix_ints(cfg))
    if name is None:
        return type(default).from_config(default.config)
    cls_name, kw = lookup(name, family)
    cls = getattr(diffusers, cls_name)
    params = _init_params(cls)
    kw = {k: v for k, v in dict(_RESET, **kw).items() if k in params}
    return cls.from_config(default.config, **kw)


def _init_params(cls):
    import inspect
    return inspect.signature(cls.__init__).parameters


def _fix_ints(cfg):
    out = {}
    for k, v in cfg.items():
        if isinstance(v, float) and v.is_integer() and k in _INT_KEYS:
            v = int(v)
        out[k] = v
    return out


_INT_KEYS = {"num_train_timesteps", "steps_offset", "solver_order", "original_inference_steps",
             "max_image_seq_len", "base_image_seq_len", "prediction_steps", "predictor_order",
             "corrector_order", "lower_order_final_steps"}


def describe(scheduler, steps=None):
    """(sampler, schedule_type) in A1111 terms for a scheduler set up to run
    `steps` steps: (None, None) when the scheduler has no A1111 counterpart,
    and schedule_type None when its timesteps match no A1111 schedule type."""
    cls = type(scheduler).__name__
    # Only the class's own settings: from_config() keeps the default
    # scheduler's others (use_karras_sigmas on a DDIM) as hidden entries.
    params = _init_params(type(scheduler))
    cfg = {k: v for k, v in scheduler.config.items() if k in params}
    sampler = None
    if is_flow(cls):
        for name, (c, _) in _FLOW.items():
            if c == cls:
                sampler = name
    else:
        for name, (c, kw) in _A1111.items():
            if name not in _NOT_A1111 and c == cls and \
                    all(cfg.get(k) == v for k, v in kw.items()):
                sampler = name
                break
    if sampler is None:
        return None, None
    spacing = cfg.get("timestep_spacing")
    if sampler == "UniPC" and (cfg.get(_KARRAS) or cfg.get("use_exponential_sigmas")
                               or cfg.get("use_beta_sigmas")):
        # A1111 runs UniPC on its own timesteps, whatever the schedule type.
        st = None
    elif cfg.get(_KARRAS):
        # Euler, Heun, LMS and DPM2 build Karras sigmas from the timesteps
        # they sample: only "linspace" ones span A1111's range.
        st = "Karras" if is_flow(cls) or sampler not in _KARRAS_FROM_TIMESTEPS or \
            spacing == "linspace" else None
    elif cfg.get("use_exponential_sigmas"):
        st = "Exponential"
    elif cfg.get("use_beta_sigmas"):
        st = "Beta"
    elif is_flow(cls):
        st = "Simple"
    elif sampler in _UNIFORM and spacing == _UNIFORM[sampler]:
        st = "Uniform"
    elif spacing == "trailing":
        st = "SGM Uniform"
    elif sampler not in _UNIFORM:
        st = "Automatic"    # DDIM, PLMS, UniPC, LCM: A1111 has one schedule for them
    elif sampler in _DDIM_TYPE_OK and spacing == "leading" and cfg.get("steps_offset") == 1 \
            and steps and int(cfg.get("num_train_timesteps", 1000)) % int(steps) == 0:
        st = "DDIM"
    else:
        st = None
    return sampler, st


def jsonable_config(scheduler):
    """The scheduler's full config as JSON-able plain data (lists, not tuples;
    numpy values turned into Python numbers)."""
    def default(o):
        if hasattr(o, "tolist"):
            return o.tolist()
        if hasattr(o, "item"):
            return o.item()
        return str(o)
    cfg = {k: v for k, v in dict(scheduler.config).items() if not k.startswith("_")}
    cfg["_class_name"] = type(scheduler).__name__
    return json.loads(json.dumps(cfg, default=default))
