"""Scheduler names both ways, and per-call schedulers that do not leak."""

import importlib

import pytest

from rdiffusers_py import pipeline

# Not `from rdiffusers_py import schedulers`: the package namespace holds the
# api function of that name (what R calls), the module is reached by path.
schedulers = importlib.import_module("rdiffusers_py.schedulers")
from rdiffusers_py.errors import InputError

A1111 = {
    "Euler": ("EulerDiscreteScheduler", {"use_karras_sigmas": False}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "DDIM": ("DDIMScheduler", {"clip_sample": False, "set_alpha_to_one": False}),
    "PLMS": ("PNDMScheduler", {"skip_prk_steps": True, "set_alpha_to_one": False}),
    "PNDM": ("PNDMScheduler", {"skip_prk_steps": True, "set_alpha_to_one": False}),
    "LMS": ("LMSDiscreteScheduler", {}),
    "Heun": ("HeunDiscreteScheduler", {}),
    "DPM2": ("KDPM2DiscreteScheduler", {}),
    "DPM2 a": ("KDPM2AncestralDiscreteScheduler", {}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": False}),
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "DPM++ 2M SDE": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    "DPM++ 2M SDE Karras": ("DPMSolverMultistepScheduler",
                            {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True}),
    "DPM++ SDE": ("DPMSolverSinglestepScheduler", {}),
    "DPM++ SDE Karras": ("DPMSolverSinglestepScheduler", {"use_karras_sigmas": True}),
    "UniPC": ("UniPCMultistepScheduler", {"solver_order": 3, "solver_type": "bh1",
                                          "timestep_spacing": "linspace"}),
    "LCM": ("LCMScheduler", {}),
    "DDPM": ("DDPMScheduler", {}),
}


@pytest.fixture(scope="module")
def default(cache_dir):
    return pipeline.get_entry("tiny", cache_dir=cache_dir).pipe.scheduler


@pytest.mark.parametrize("name", sorted(A1111))
def test_a1111_names_build_the_right_scheduler_and_round_trip(name, default):
    cls, kw = A1111[name]
    s = schedulers.build(default, name)
    assert type(s).__name__ == cls
    for k, v in kw.items():
        assert s.config[k] == v
    sampler, schedule_type = schedulers.describe(s)
    if name == "DDPM":
        # Not an A1111 sampler: never written as one.
        assert (sampler, schedule_type) == (None, None)
    else:
        shown = sampler if schedule_type != "Karras" else sampler + " Karras"
        assert schedulers.lookup(shown) == schedulers.lookup(name)
    assert s is not default


def test_class_names_and_case_insensitive_names(default):
    assert type(schedulers.build(default, "EulerAncestralDiscreteScheduler")).__name__ == \
        "EulerAncestralDiscreteScheduler"
    assert schedulers.lookup("euler a") == schedulers.lookup("Euler a")


def test_table_has_both_spellings(api):
    t = api.schedulers()
    assert t["DPM++ 2M Karras"] == {"cls": "DPMSolverMultistepScheduler",
                                    "kwargs": {"algorithm_type": "dpmsolver++",
                                               "solver_order": 2,
                                               "timestep_spacing": "linspace",
                                               "use_karras_sigmas": True},
                                    "a1111": "DPM++ 2M", "schedule_type": "Karras"}
    assert t["DDIMScheduler"]["cls"] == "DDIMScheduler"


def test_unknown_name_suggests_close_ones():
    with pytest.raises(InputError, match='Did you mean.*"Euler a"'):
        schedulers.lookup("Eular a")


def test_flow_models_need_flow_schedulers():
    assert schedulers.lookup("Euler", "sd3")[0] == "FlowMatchEulerDiscreteScheduler"
    assert schedulers.lookup("FlowMatchHeunDiscreteScheduler", "sd3")[0] == \
        "FlowMatchHeunDiscreteScheduler"
    with pytest.raises(InputError, match="flow-matching"):
        schedulers.lookup("DPM++ 2M Karras", "sd3")
    with pytest.raises(InputError, match="flow-matching"):
        schedulers.lookup("FlowMatchEulerDiscreteScheduler", "sd15")


def test_config_rebuilds_scheduler_exactly(default):
    s = schedulers.build(default, "DPM++ 2M SDE Karras")
    cfg = schedulers.jsonable_config(s)
    # R may hand integers back as doubles.
    cfg["num_train_timesteps"] = float(cfg["num_train_timesteps"])
    again = schedulers.build(default, None, cfg)
    assert type(again) is type(s)
    assert schedulers.jsonable_config(again) == schedulers.jsonable_config(s)


def _full_sigma_max(s):
    a = s.alphas_cumprod
    return float(((1 - a) / a).sqrt().max())


_KDIFFUSION = ["Euler", "Euler a", "Heun", "LMS", "DPM2", "DPM2 a", "DPM++ 2M", "DPM++ 2M SDE",
               "DPM++ SDE"]   # (DPM++ SDE's class always starts at timestep 999)


@pytest.mark.parametrize("name", _KDIFFUSION + [n + " Karras" for n in _KDIFFUSION
                                                if n != "Euler a"])
@pytest.mark.parametrize("steps", [4, 30])
def test_kdiffusion_samplers_span_the_models_full_sigma_range(name, steps, default):
    # A1111's k-diffusion samplers start at the model's sigma_max, Automatic
    # or Karras, whatever the default scheduler's timestep spacing ("leading"
    # here, as in SD1.5 and SDXL: at 4 steps it would start at timestep 751).
    assert default.config.timestep_spacing == "leading"
    s = schedulers.build(default, name)
    s.set_timesteps(steps)
    assert float(s.sigmas.max()) == pytest.approx(_full_sigma_max(s), rel=1e-4)
    # A1111 v1.10's "Automatic" is Karras for some samplers: the schedule is
    # named.
    assert schedulers.describe(s)[1] == ("Karras" if name.endswith("Karras") else "Uniform")


@pytest.mark.parametrize("name", ["DDIM", "PLMS"])
def test_ddim_and_plms_keep_a1111s_leading_timesteps(name, default):
    # A1111 runs them on every (1000 // steps)-th timestep from 1: "leading"
    # with the models' steps_offset of 1.
    s = schedulers.build(default, name)
    s.set_timesteps(4)
    # (PLMS evaluates its first timestep twice.)
    assert sorted({int(t) for t in s.timesteps}, reverse=True) == [751, 501, 251, 1]
    assert schedulers.describe(s) == (name, "Automatic")


def test_ddim_and_plms_are_a1111s_whatever_the_models_config_leaves_out(cache_dir):
    # tiny-sdxl's Euler config, like some real ones, does not list
    # clip_sample or set_alpha_to_one: diffusers' class defaults are True.
    euler = pipeline.get_entry("tiny-sdxl", cache_dir=cache_dir).pipe.scheduler
    assert "clip_sample" not in euler.config
    ddim = schedulers.build(euler, "DDIM")
    assert (ddim.config.clip_sample, ddim.config.set_alpha_to_one) == (False, False)
    assert schedulers.build(euler, "PLMS").config.set_alpha_to_one is False
    assert schedulers.describe(ddim) == ("DDIM", "Automatic")
    # A DDIM that clips is not A1111's.
    import diffusers
    clipping = diffusers.DDIMScheduler.from_config(ddim.config, clip_sample=True)
    assert schedulers.describe(clipping) == (None, None)


def test_a_models_own_spacing_is_described_in_a1111_terms(default):
    import diffusers
    euler = diffusers.EulerDiscreteScheduler
    assert default.config.steps_offset == 1
    own = euler.from_config(default.config)
    # SDXL's own scheduler: Euler on "leading" timesteps from 1, which is
    # A1111's "DDIM" schedule type where the steps divide 1000 (A1111 runs
    # 31 steps for 30).
    assert schedulers.describe(own, 20) == ("Euler", "DDIM")
    assert schedulers.describe(own, 30) == ("Euler", None)
    assert schedulers.describe(own) == ("Euler", None)
    assert schedulers.describe(euler.from_config(default.config, timestep_spacing="trailing"),
                               20) == ("Euler", "SGM Uniform")
    assert schedulers.describe(euler.from_config(default.config, timestep_spacing="linspace"),
                               20) == ("Euler", "Uniform")
    # No A1111 schedule type has these timesteps, nor Karras sigmas built
    # from "leading" ones (they start at sigma 4.1 for 4 steps, not 14.6).
    assert schedulers.describe(euler.from_config(default.config, steps_offset=0), 20) == \
        ("Euler", None)
    assert schedulers.describe(euler.from_config(default.config, use_karras_sigmas=True), 4) == \
        ("Euler", None)
    dpm = diffusers.DPMSolverMultistepScheduler.from_config(default.config, solver_order=2)
    assert schedulers.describe(dpm, 20) == ("DPM++ 2M", None)
    # A1111's DPM2 drops the next-to-last sigma: "trailing" is its Uniform.
    dpm2 = diffusers.KDPM2DiscreteScheduler.from_config(default.config, timestep_spacing="linspace")
    assert schedulers.describe(dpm2, 20) == ("DPM2", None)
    assert schedulers.describe(schedulers.build(default, "DPM2"), 20) == ("DPM2", "Uniform")


def test_unipc_is_a1111s_and_runs_any_step_count(gen, default):
    import diffusers
    s = schedulers.build(default, "UniPC")
    s.set_timesteps(4)
    # Time-uniform from 999 down to the last trained noise level (not 0).
    assert [int(t) for t in s.timesteps] == [999, 749, 500, 250]
    a0 = float(s.alphas_cumprod[0])
    assert float(s.sigmas[-1]) == pytest.approx(((1 - a0) / a0) ** 0.5, rel=1e-4)
    # A model's own UniPC (order 2, bh2) is not A1111's.
    own = diffusers.UniPCMultistepScheduler.from_config(default.config)
    assert schedulers.describe(own) == (None, None)
    for steps in (1, 2, 3):
        res = gen(scheduler="UniPC", steps=steps)
        assert (res[0]["meta"]["sampler"], res[0]["meta"]["schedule_type"]) == \
            ("UniPC", "Automatic")


def test_a_name_means_its_own_settings_whatever_the_default(default):
    import diffusers
    # A model whose default scheduler is an SDE solver with Karras sigmas.
    sde = diffusers.DPMSolverMultistepScheduler.from_config(
        default.config, use_karras_sigmas=True, algorithm_type="sde-dpmsolver++")
    for name, want in [("Euler a", ("Euler a", "Uniform")), ("DDIM", ("DDIM", "Automatic")),
                       ("DEIS", (None, None)), ("DPM++ SDE", ("DPM++ SDE", "Uniform")),
                       ("Euler", ("Euler", "Uniform")), ("LMS Karras", ("LMS", "Karras"))]:
        s = schedulers.build(sde, name)
        assert schedulers.describe(s) == want, name
    assert schedulers.build(sde, "DPM++ SDE").config.algorithm_type == "dpmsolver++"
    # A1111's UniPC ignores the schedule type: "UniPC Karras" has no A1111 name.
    assert schedulers.describe(schedulers.build(sde, "UniPC Karras")) == ("UniPC", None)
    # Exponential sigmas in the default do not clash with a Karras name.
    expo = diffusers.EulerDiscreteScheduler.from_config(default.config,
                                                        use_exponential_sigmas=True)
    s = schedulers.build(expo, "DPM++ 2M Karras")
    assert schedulers.describe(s) == ("DPM++ 2M", "Karras")
    # "2M" is second order, whatever order the model's default uses.
    third = diffusers.DPMSolverMultistepScheduler.from_config(default.config, solver_order=3)
    assert schedulers.describe(third) == (None, None)
    for name in ("DPM++ 2M", "DPM++ 2M SDE Karras"):
        s = schedulers.build(third, name)
        assert s.config.solver_order == 2
        assert schedulers.describe(s)[0] == name.replace(" Karras", "")


def test_settings_diffusers_refuses_are_input_errors(default):
    cfg = schedulers.jsonable_config(schedulers.build(default, "Euler Karras"))
    cfg["use_exponential_sigmas"] = True          # with Karras: "only one of"
    with pytest.raises(InputError, match="cannot be built"):
        schedulers.build(default, None, cfg)


def test_plms_is_the_linear_multistep_method_without_warm_up(gen, cache_dir):
    """PLMS runs one UNet call per step plus one (its first step evaluates
    twice, as in LDM's PLMS sampler) rather than PNDM's Runge-Kutta warm-up
    (19 calls for 10 steps), and runs with fewer than 4 steps, on a model
    whose default is not PNDM."""
    unet = pipeline.get_entry("tiny", cache_dir=cache_dir).pipe.unet
    calls = []
    hook = unet.register_forward_hook(lambda *a: calls.append(1))
    try:
        for steps in (2, 10):
            calls.clear()
            res = gen(scheduler="PLMS", steps=steps)
            assert len(calls) == steps + 1
            assert (res[0]["meta"]["sampler"], res[0]["meta"]["scheduler"]) == \
                ("PLMS", "PNDMScheduler")
    finally:
        hook.remove()


@pytest.mark.parametrize("name,steps", [("LCM", 60), ("TCD", 60), ("DDIM", 1001),
                                        ("Euler", 1001), ("PNDMScheduler", 2),
                                        ("DDIM", 1000), ("PLMS", 1000)])
def test_step_counts_a_scheduler_cannot_run_are_input_errors(gen, name, steps):
    # Raw ValueError / IndexError from deep inside diffusers before.
    # (PNDMScheduler by class name keeps the model's PRK warm-up: >= 4 steps.
    # DDIM and PLMS at 1000: the model's steps_offset = 1 pushes the last
    # timestep past the 1000 trained ones.)
    with pytest.raises(InputError, match="steps"):
        gen(scheduler=name, steps=steps)


def test_pndm_warm_up_says_how_many_steps_it_needs(gen):
    with pytest.raises(InputError, match="at least 4 steps, not 3"):
        gen(scheduler="PNDMScheduler", steps=3)


def test_the_most_steps_a_scheduler_can_run_pass_the_check(default):
    assert default.config.steps_offset == 1
    for name, steps in [("DDIM", 999), ("PLMS", 999), ("Euler", 1000)]:
        schedulers.check_steps(schedulers.build(default, name), steps)


def test_flow_schedules_are_described_by_their_sigmas(default, cache_dir):
    flow = pipeline.get_entry("tiny-sd3", cache_dir=cache_dir).pipe.scheduler
    cfg = schedulers.jsonable_config(flow)
    assert schedulers.describe(schedulers.build(flow, None, cfg, "sd3")) == ("Euler", "Simple")
    for key, st in [("use_karras_sigmas", "Karras"), ("use_beta_sigmas", "Beta")]:
        s = schedulers.build(flow, None, dict(cfg, **{key: True}), "sd3")
        assert schedulers.describe(s) == ("Euler", st)


def test_a_recorded_config_of_the_other_family_is_refused(default):
    import diffusers
    flow = schedulers.jsonable_config(diffusers.FlowMatchEulerDiscreteScheduler())
    with pytest.raises(InputError, match="flow-matching"):
        schedulers.build(default, "FlowMatchEulerDiscreteScheduler", flow, family="sd15")
    # A class without a short name (a model's own) is checked when rebuilt.
    own = schedulers.jsonable_config(diffusers.SASolverScheduler.from_config(default.config))
    with pytest.raises(InputError, match="does not fit"):
        schedulers.build(default, None, own, family="sd3")


def test_recorded_configs_hold_no_library_bookkeeping(default):
    cfg = schedulers.jsonable_config(default)
    assert cfg["_class_name"] == type(default).__name__
    assert [k for k in cfg if k.startswith("_")] == ["_class_name"]


def test_a_name_resets_beta_sigmas_of_the_default(default):
    import diffusers
    beta = diffusers.EulerDiscreteScheduler.from_config(default.config, use_beta_sigmas=True)
    assert schedulers.build(beta, "Euler").config.use_beta_sigmas is False
