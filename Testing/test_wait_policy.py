"""OpenMP's wait policy chosen per process (runtime_env), other programs' CPU use
(cpu_contention) and one thread while the cores are shared in a spinning process (spin_guard)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import torch
from UNetPlusPlusLib.engine import cpu_contention, runtime_env, spin_guard
from UNetPlusPlusLib.engine.cpu_contention import CpuReading

LINUX = cpu_contention.read() is not None
_BUSY = "import time\nend = time.monotonic() + 30\nwhile time.monotonic() < end:\n    pass\n"

_REPORT = (
    "import json, os, sys\n"
    "from UNetPlusPlusLib.engine import runtime_env\n"
    "runtime_env.apply()\n"
    "{between}\n"
    "{torch}\n"
    "print(json.dumps({{'policy': runtime_env.wait_policy(),"
    " 'others': runtime_env.others_cores_at_start(),"
    " 'env': {{k: os.environ.get(k) for k in"
    " ('OMP_WAIT_POLICY', 'GOMP_SPINCOUNT', 'KMP_BLOCKTIME')}}}}))\n"
)


def _clean_env(repo_root, **extra) -> dict:
    """The test process's environment without any OpenMP wait setting (conftest sets them)."""
    names = (*runtime_env._OPENMP_NAMES, "KMP_BLOCKTIME", runtime_env.MARK, runtime_env.KNOB)
    env = {k: v for k, v in os.environ.items() if k not in names}
    env["PYTHONPATH"] = str(repo_root / "UNetPlusPlus")
    env.update(extra)
    return env


def _report(env: dict, between: str = "", load_torch: bool = False) -> dict:
    """What a fresh process reports after ``apply()``, ``between`` and then the import of torch:
    with ``load_torch`` torch itself, else only its look-up (``importlib.util.find_spec`` asks
    the import hooks, runtime_env's included, as ``import torch`` does, without loading torch's
    libraries: about 4 s of CPU a process)."""
    torch_import = (
        "import torch" if load_torch else "import importlib.util; importlib.util.find_spec('torch')"
    )
    code = _REPORT.format(between=between, torch=torch_import)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_fixed_spin_and_passive_reach_openmp_before_torch_loads(repo_root):
    spin = _report(_clean_env(repo_root, UNETPP_WAIT_POLICY="spin"), load_torch=True)
    assert spin["policy"] == "spin"
    assert spin["env"] == {
        "OMP_WAIT_POLICY": None,
        "GOMP_SPINCOUNT": "300000",
        "KMP_BLOCKTIME": "0",
    }
    passive = _report(_clean_env(repo_root, UNETPP_WAIT_POLICY="passive"), load_torch=True)
    assert passive["policy"] == "passive"
    assert passive["env"] == {
        "OMP_WAIT_POLICY": "PASSIVE",
        "GOMP_SPINCOUNT": None,
        "KMP_BLOCKTIME": "0",
    }


@pytest.mark.skipif(not LINUX, reason="the load is read from /proc/stat")
def test_auto_sleeps_when_other_programs_use_the_cores(repo_root):
    busy = [subprocess.Popen([sys.executable, "-c", _BUSY]) for _ in range(2)]
    try:
        time.sleep(0.3)  # both loops running
        # decided by runtime_env's import hook at torch's look-up, as at `import torch`; the
        # libraries' load after it (about 4 CPU-s, and the two loops spinning through it) is
        # what test_fixed_spin_and_passive_reach_openmp_before_torch_loads covers
        seen = _report(_clean_env(repo_root))
    finally:
        for process in busy:
            process.kill()
            process.wait()
    assert seen["policy"] == "passive"
    assert seen["others"] >= runtime_env.QUIET_CORES  # measured at torch's import
    assert seen["env"]["OMP_WAIT_POLICY"] == "PASSIVE"
    assert seen["env"]["GOMP_SPINCOUNT"] is None


def test_the_users_own_openmp_settings_are_kept(repo_root):
    seen = _report(_clean_env(repo_root, OMP_WAIT_POLICY="ACTIVE", KMP_BLOCKTIME="200"))
    assert seen["policy"] == "user"
    assert seen["env"] == {
        "OMP_WAIT_POLICY": "ACTIVE",
        "GOMP_SPINCOUNT": None,
        "KMP_BLOCKTIME": "200",
    }


def test_a_child_started_with_child_env_decides_again(repo_root):
    """child_env's passive settings are marked as ours: the child's apply() may choose to spin;
    a user's PASSIVE is not marked and holds in the child."""
    env = runtime_env.child_env(_clean_env(repo_root, UNETPP_WAIT_POLICY="spin"))
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"  # a child that never calls apply() sleeps
    assert _report(env)["policy"] == "spin"
    users = runtime_env.child_env(_clean_env(repo_root, OMP_WAIT_POLICY="PASSIVE"))
    assert runtime_env.MARK not in users
    users["UNETPP_WAIT_POLICY"] = "spin"
    assert _report(users)["env"]["OMP_WAIT_POLICY"] == "PASSIVE"


def test_training_sleeps_whatever_the_load(repo_root):
    seen = _report(
        _clean_env(repo_root, UNETPP_WAIT_POLICY="auto"), between="runtime_env.prefer_passive()"
    )
    assert seen["policy"] == "passive"
    assert seen["env"]["OMP_WAIT_POLICY"] == "PASSIVE"
    assert seen["others"] is None  # no sample was taken to its end


def test_an_explicit_spin_is_kept_by_long_lived_processes(repo_root):
    seen = _report(
        _clean_env(repo_root, UNETPP_WAIT_POLICY="spin"), between="runtime_env.prefer_passive()"
    )
    assert seen["policy"] == "spin"
    assert seen["env"]["GOMP_SPINCOUNT"] == "300000"
    assert seen["env"]["OMP_WAIT_POLICY"] is None


_SERVE = (
    "import io, json, os, sys\n"
    "from UNetPlusPlusLib import cli\n"
    "from UNetPlusPlusLib.engine import runtime_env\n"
    "runtime_env.QUIET_CORES = 1e9  # any load counts as quiet: auto alone would spin\n"
    "sys.stdin = io.StringIO('')\n"
    "code = cli.main(['serve'])\n"
    "print(json.dumps({'code': code, 'policy': runtime_env.wait_policy(),"
    " 'wait': os.environ.get('OMP_WAIT_POLICY'), 'spin': os.environ.get('GOMP_SPINCOUNT')}))\n"
)


@pytest.mark.parametrize("knob, policy", [("auto", "passive"), ("spin", "spin")])
def test_serve_sleeps_unless_spinning_is_asked_for(repo_root, knob, policy):
    """``unetpp serve`` lives beside Slicer while the load changes: it sleeps, even when the
    machine was quiet at its start (auto would then spin: QUIET_CORES is raised so that every
    load counts as quiet)."""
    env = _clean_env(repo_root, UNETPP_WAIT_POLICY=knob)
    out = subprocess.run(
        [sys.executable, "-c", _SERVE], env=env, capture_output=True, text=True, check=True
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["code"] == 0
    assert seen["policy"] == policy
    if policy == "passive":
        assert (seen["wait"], seen["spin"]) == ("PASSIVE", None)
    else:
        assert (seen["wait"], seen["spin"]) == (None, "300000")


_SERVE_PROGRAM = (
    "import io, json, os, sys\n"
    "from UNetPlusPlusLib import cli, torch_preload\n"
    "from UNetPlusPlusLib.engine import runtime_env\n"
    "runtime_env.QUIET_CORES = 1e9  # any load counts as quiet: auto alone would spin\n"
    "sys.stdin = io.StringIO('')\n"
    "sys.argv = ['unetpp', 'serve']\n"
    "code = cli.main()  # as a program: torch is imported on a thread from the start\n"
    "torch_preload.wait()\n"
    "print(json.dumps({'code': code, 'policy': runtime_env.wait_policy(),"
    " 'wait': os.environ.get('OMP_WAIT_POLICY'), 'spin': os.environ.get('GOMP_SPINCOUNT')}))\n"
)


def test_serve_run_as_a_program_sleeps_on_a_quiet_machine(repo_root, tmp_path):
    """`unetpp serve` run as a program imports torch on a thread from its start
    (torch_preload): the import's wait-policy decision sampled the load while the main thread
    chose passive, then wrote the spinning settings over it on a quiet machine (tester 20).
    A stand-in ``torch`` package keeps the import cheap; the decision runs at its look-up."""
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("")
    env = _clean_env(repo_root)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
    out = subprocess.run(
        [sys.executable, "-c", _SERVE_PROGRAM], env=env, capture_output=True, text=True, check=True
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"code": 0, "policy": "passive", "wait": "PASSIVE", "spin": None}


def _pending(monkeypatch, before: CpuReading) -> None:
    for name in (*runtime_env._OPENMP_NAMES, runtime_env.MARK):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setitem(runtime_env._state, "policy", "pending")
    monkeypatch.setitem(runtime_env._state, "sample", before)
    monkeypatch.setitem(runtime_env._state, "others_cores", None)


def test_decide_spins_only_below_the_quiet_threshold(monkeypatch):
    start = CpuReading(wall_s=100.0, busy_s=50.0, own_s=1.0)
    # 0.1 s later: 0.03 CPU-s busy, 0.01 of them ours -> others 0.2 cores
    _pending(monkeypatch, start)
    assert runtime_env.decide(reading=CpuReading(100.1, 50.03, 1.01)) == "spin"
    assert os.environ["GOMP_SPINCOUNT"] == "300000" and "OMP_WAIT_POLICY" not in os.environ
    assert runtime_env.others_cores_at_start() == pytest.approx(0.2)
    # others 0.3 cores: passive, nothing written
    _pending(monkeypatch, start)
    assert runtime_env.decide(reading=CpuReading(100.1, 50.04, 1.01)) == "passive"
    assert "GOMP_SPINCOUNT" not in os.environ
    # /proc/stat unreadable at the end: passive
    _pending(monkeypatch, start)
    monkeypatch.setattr(cpu_contention, "read", lambda *a, **k: None)
    assert runtime_env.decide(sample_s=0.0) == "passive"


def test_cpu_readings_parse_proc_stat_and_refuse_anything_else(tmp_path):
    good = tmp_path / "stat"
    good.write_text("cpu  100 0 50 1000 20 5 5 10 0 0\ncpu0 1 2 3\n")
    reading = cpu_contention.read(str(good))
    assert reading.busy_s == pytest.approx(170 * cpu_contention._TICK_S)  # not idle, not iowait
    for text in ("", "intr 1 2 3\n", "cpu 1 2 x 4 5 6 7 8\n", "cpu 1 2 3\n"):
        good.write_text(text)
        assert cpu_contention.read(str(good)) is None
    assert cpu_contention.read(str(tmp_path / "missing")) is None
    # too short a window to tell
    assert cpu_contention.others_cores(CpuReading(1.0, 5, 1), CpuReading(1.01, 6, 1)) is None


@pytest.mark.skipif(not LINUX, reason="the load is read from /proc/stat")
def test_a_busy_program_is_seen():
    busy = subprocess.Popen([sys.executable, "-c", _BUSY])
    try:
        time.sleep(0.5)  # python start-up, then spinning
        start = cpu_contention.read()
        time.sleep(0.6)
        after = cpu_contention.read()
    finally:
        busy.kill()
        busy.wait()
    assert cpu_contention.others_cores(start, after) >= 0.5


class _Machine:
    """Fake /proc/stat readings: others use ``cores`` while the clock advances."""

    def __init__(self) -> None:
        self.now, self.busy, self.cores = 0.0, 0.0, 0.0

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.busy += self.cores * seconds

    def read(self):
        return CpuReading(self.now, self.busy, 0.0)

    def guard(self, threads: list, cpus: int, **options) -> spin_guard.SpinGuard:
        """A guard on this machine's readings and clock, with torch's thread count stood in
        for by ``threads[0]``."""
        return spin_guard.SpinGuard(
            read=self.read,
            get_threads=lambda: threads[0],
            set_threads=lambda n: threads.__setitem__(0, n),
            clock=lambda: self.now,
            cpus=cpus,
            **options,
        )


def test_guard_drops_to_one_thread_while_others_use_the_cores_and_comes_back():
    machine, threads = _Machine(), [2]
    guard = machine.guard(threads, cpus=2)
    guard.check()  # first look: a reading, no decision
    machine.cores = 1.8
    machine.advance(0.1)
    guard.check()  # within the window: not even read
    assert threads == [2]
    machine.advance(0.2)
    guard.check()
    assert threads == [1] and guard.drops == 1 and guard.saved_threads == 2
    machine.advance(0.3)
    guard.check()  # still busy: stays on one thread
    assert threads == [1] and guard.drops == 1
    machine.cores = 0.35  # between the thresholds: stays too (no flapping)
    for _ in range(2):
        machine.advance(0.3)
        guard.check()
    assert threads == [1] and guard.drops == 1
    machine.cores = 0.05
    machine.advance(0.3)
    guard.check()
    assert threads == [2] and guard.saved_threads is None


def test_guard_keeps_one_thread_when_a_new_predictor_resets_the_count_under_load():
    """``unetpp serve`` switching task builds a Predictor, which sets torch's threads again:
    the guard, already on one thread, must not leave the process spinning on two."""
    machine, threads = _Machine(), [2]
    guard = machine.guard(threads, cpus=2)
    guard.check()
    machine.cores = 1.8
    machine.advance(0.3)
    guard.check()
    assert threads == [1] and guard.saved_threads == 2
    threads[0] = 3  # configure_threads() of a new Predictor, e.g. the nodule model
    for _ in range(4):
        machine.advance(0.1)  # also within a window
        guard.check()
        assert threads == [1]
    machine.cores = 0.0
    for _ in range(2):
        machine.advance(0.3)
        guard.check()
    assert threads == [3] and guard.saved_threads is None  # the new count comes back


def test_our_executor_runs_on_one_thread_when_a_spinning_process_finds_the_cores_shared(
    monkeypatch,
):
    from UNetPlusPlusLib.engine.executors import OursExecutor
    from UNetPlusPlusLib.engine.network import UNetPlusPlus3D

    tiny_model = UNetPlusPlus3D(1, 2, features=(4, 8, 8, 16, 16, 4)).eval()

    machine = _Machine()
    guard = spin_guard.SpinGuard(read=machine.read, clock=lambda: machine.now, cpus=2)
    monkeypatch.setattr(spin_guard, "_GUARD", guard)
    tile = torch.zeros(1, tiny_model.in_channels, 16, 16, 16)
    executor = OursExecutor(tiny_model, threads=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        monkeypatch.setitem(runtime_env._state, "policy", "passive")
        machine.cores = 2.0
        for _ in range(3):
            machine.advance(0.3)
            executor.run(tile, 1)
        assert torch.get_num_threads() == 2  # a sleeping process is left alone
        monkeypatch.setitem(runtime_env._state, "policy", "spin")
        for _ in range(2):
            machine.advance(0.3)
            with torch.inference_mode():
                executor.run(tile, 1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)


def test_a_process_that_loaded_torch_before_apply_is_guarded(repo_root, monkeypatch):
    """torch imported before ``apply`` (a script, a notebook) spins at libgomp's default: the
    guard must drop it to one thread under load too; the user's own settings are theirs."""
    code = (
        "import torch\n"
        "from UNetPlusPlusLib.engine import runtime_env\n"
        "runtime_env.apply()\n"
        "print(runtime_env.wait_policy(), runtime_env.may_spin(),"
        " runtime_env.start_reading() is not None)\n"
    )

    def run(source: str = code, **extra) -> list[str]:
        """(policy, may spin, has a start reading) in a fresh process running ``source``."""
        env = _clean_env(repo_root, **extra)
        out = subprocess.run(
            [sys.executable, "-c", source], env=env, capture_output=True, text=True
        )
        return out.stdout.split()

    policy, spins, reading = run()
    assert (policy, spins) == ("unmanaged", "True")
    if LINUX:  # a reading for spin_guard's first look, as with UNETPP_WAIT_POLICY=spin
        assert reading == "True"
        without_torch = run(code.replace("import torch\n", ""), UNETPP_WAIT_POLICY="spin")
        assert without_torch[::2] == ["spin", "True"]
    assert run(OMP_WAIT_POLICY="PASSIVE")[:2] == ["passive", "False"]
    assert run(OMP_WAIT_POLICY="ACTIVE")[:2] == ["unmanaged", "False"]  # the user asked for it

    from UNetPlusPlusLib.engine.executors import OursExecutor
    from UNetPlusPlusLib.engine.network import UNetPlusPlus3D

    model = UNetPlusPlus3D(1, 2, features=(4, 8, 8, 16, 16, 4)).eval()
    machine = _Machine()
    monkeypatch.setattr(
        spin_guard, "_GUARD", spin_guard.SpinGuard(machine.read, clock=lambda: machine.now, cpus=2)
    )
    monkeypatch.setitem(runtime_env._state, "policy", "unmanaged")
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    executor, tile = OursExecutor(model, threads=2), torch.zeros(1, 1, 16, 16, 16)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        machine.cores = 2.0
        with torch.inference_mode():
            for _ in range(2):
                machine.advance(0.3)
                executor.run(tile, 1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)


def test_an_unknown_wait_policy_is_said_and_an_empty_one_is_auto(repo_root, monkeypatch, caplog):
    code = (
        "from UNetPlusPlusLib.engine import runtime_env\n"
        "runtime_env.apply()\n"
        "print(runtime_env.wait_policy(), '|', runtime_env.knob_warning())\n"
    )
    env = _clean_env(repo_root, UNETPP_WAIT_POLICY="spinn")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == (
        "passive | UNETPP_WAIT_POLICY='spinn' is not auto, passive or spin: OpenMP's idle "
        "threads sleep (passive)."
    )
    if LINUX:  # empty as unset: the load decides (a sample was taken)
        assert _report(_clean_env(repo_root, UNETPP_WAIT_POLICY=""))["others"] is not None

    from UNetPlusPlusLib.engine.predictor import Predictor
    from UNetPlusPlusLib.engine.registry import find_model

    monkeypatch.setitem(runtime_env._state, "knob_warning", "the warning")
    with caplog.at_level("WARNING"):
        Predictor(find_model("lung-nodule"), device="cpu", threads=1)
    assert "the warning" in caplog.text


def test_guard_keeps_the_threads_that_fit_the_cpus_other_programs_leave_free():
    """On 16 CPUs, 8 spinning threads are not descheduled when others use half a core: one
    thread there would be ~8x slower for nothing. Under more load, the free CPUs are kept."""
    machine, threads = _Machine(), [8]
    guard = machine.guard(threads, cpus=16)
    guard.check()
    machine.cores = 0.6  # Slicer rendering, a browser
    machine.advance(0.3)
    guard.check()
    assert threads == [8] and guard.drops == 0
    machine.cores = 11.8  # 12 busy: 4 CPUs left
    machine.advance(0.3)
    guard.check()
    assert threads == [4] and guard.saved_threads == 8 and guard.drops == 1
    machine.cores = 15.7
    machine.advance(0.3)
    guard.check()
    assert threads == [1]
    machine.cores = 5.0
    machine.advance(0.3)
    guard.check()
    assert threads == [8]  # 11 CPUs free again: all of ours fit
    machine.cores = 0.1
    machine.advance(0.3)
    guard.check()
    assert threads == [8] and guard.saved_threads is None


def test_the_first_tile_of_a_spinning_process_under_load_is_guarded_already():
    """The first look compares with the reading taken when the policy was decided: a first
    tile no longer spins on every thread under load (it could take seconds there)."""
    machine, threads = _Machine(), [2]
    start = machine.read()  # runtime_env's reading at the decision
    machine.cores = 1.9
    machine.advance(2.0)  # loading the model and the image
    guard = machine.guard(threads, cpus=2, start=lambda: start)
    guard.check()
    assert threads == [1] and guard.drops == 1


def test_the_predictor_looks_before_each_tile_and_before_post_processing(
    sphere_predictor, monkeypatch
):
    from helpers import make_sphere_image
    from UNetPlusPlusLib.engine.image_read import volume_from_sitk

    events = []

    class Counting(spin_guard.SpinGuard):
        def check(self) -> None:
            events.append("look")

    executor = sphere_predictor.executor
    run = executor.run
    monkeypatch.setattr(executor, "run", lambda *a, **k: events.append("tile") or run(*a, **k))
    monkeypatch.setattr(spin_guard, "_GUARD", Counting())
    monkeypatch.setitem(runtime_env._state, "policy", "spin")
    volume = volume_from_sitk([make_sphere_image((40, 40, 40))], channel_names=["CT"])
    result = sphere_predictor.segment(volume)
    assert result.info["openmp"] == {"wait_policy": "spin", "one_thread_switches": 0}
    tiles = events.count("tile")
    assert tiles >= 1 and events == ["tile", "look"] * tiles + ["look"]  # then post-processing
