"""Our planners against peer libraries, on the same objectives with the same samples x iterations.

Tasks
- point mass: B = 8 batched 2-D point masses, goal reach, horizon 16, one solve from rest;
- Pendulum: gymnasium's Pendulum-v1 swing-up under MPC (one action executed per replan, 200 steps),
  planned with its true dynamics re-written in torch (pytorch-mppi's example task);
- iCEM vs CEM: samples iCEM needs to reach CEM's final point-mass cost;
- planner overhead at population 256 (benchmarks/planner_overhead.py).

Peers: `pytorch-mppi` (MPPI_Batched) and `stable-worldmodel` (CEMSolver, ICEMSolver, MPPISolver). They
are not dependencies of uva-plan: install them in a separate environment that keeps this torch, e.g.
    python -m venv --system-site-packages /tmp/peer-venv
    echo torch==2.13.0 > /tmp/c.txt && /tmp/peer-venv/bin/pip install -c /tmp/c.txt pytorch-mppi stable-worldmodel
    PYTHONPATH=. /tmp/peer-venv/bin/python benchmarks/planners_vs_peers.py
Under the main environment the same script runs and reports missing peers as such.

Fairness: every planner calls the same torch dynamics and cost functions; peers get their batch size
set to B (one cost call per iteration, their best case) and the same population, elites, iterations,
noise and temperature as ours. Final costs are re-evaluated with the same objective for everyone
(plans clipped to the action box, as the environment does). Timings are medians over repeats, one
torch thread for everyone (steady on a shared machine), all in one process and run.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import math
import statistics
import sys
import time
import types
from dataclasses import dataclass, field

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from planners import CEM, ICEM, MPPI, run_mpc

console = Console(width=150)

# ---------------------------------------------------------------------------------------------
# peers


def load_pytorch_mppi():
    try:
        from pytorch_mppi import MPPI_Batched
    except Exception as exc:  # noqa: BLE001 - any import failure means "peer unavailable"
        return None, f"{type(exc).__name__}: {exc}".splitlines()[0]
    return MPPI_Batched, None


def load_stable_worldmodel():
    """stable_worldmodel's package __init__ imports its whole stack (envs, torchvision, lancedb); the
    PyPI torchvision wheel does not load against this CPU torch. The solvers need none of that, so on
    failure load `stable_worldmodel.solver` under a bare parent package and say so in the table."""
    try:
        import stable_worldmodel.solver as solver

        return solver, None
    except ModuleNotFoundError as exc:
        return None, f"not installed ({exc})"
    except Exception as exc:  # noqa: BLE001
        first_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
    for name in [m for m in sys.modules if m == "stable_worldmodel" or m.startswith("stable_worldmodel.")]:
        del sys.modules[name]
    spec = importlib.util.find_spec("stable_worldmodel")
    parent = types.ModuleType("stable_worldmodel")
    parent.__path__ = list(spec.submodule_search_locations)
    sys.modules["stable_worldmodel"] = parent
    try:
        import stable_worldmodel.solver as solver
    except Exception as exc:  # noqa: BLE001
        return None, f"{first_error}; solvers alone: {type(exc).__name__}: {exc}".splitlines()[0]
    return solver, f"package import failed ({first_error}); solver modules loaded directly"


class SwmCost:
    """stable-worldmodel's Costable protocol around our objective: info['state'] is expanded to
    [B, N, nx] by the solver; every candidate of a problem shares the same start state."""

    def __init__(self, objective_of_state):
        self.objective_of_state = objective_of_state

    def get_cost(self, info_dict, action_candidates):
        return self.objective_of_state(info_dict["state"][:, 0])(action_candidates)

    criterion = get_cost


def swm_solver(solver_mod, kind: str, model, *, batch: int, horizon: int, action_dim: int, low, high, **kw):
    cls = {"cem": solver_mod.CEMSolver, "icem": solver_mod.ICEMSolver, "mppi": solver_mod.MPPISolver}[kind]
    solver = cls(model, batch_size=batch, device="cpu", **kw)
    import gymnasium as gym

    space = gym.spaces.Box(
        low=np.full((batch, action_dim), low, np.float32), high=np.full((batch, action_dim), high, np.float32)
    )
    solver.configure(
        action_space=space, n_envs=batch, config=types.SimpleNamespace(horizon=horizon, action_block=1)
    )
    return solver


def swm_settings(kind: str, samples: int, elites: int, iterations: int, var_scale: float, temperature: float) -> dict:
    """stable-worldmodel's solver arguments for the same population, elites, iterations and noise as ours
    (iCEM: its colored noise, momentum and kept elites at iCEM's defaults; MPPI: every sample weighted)."""
    common = dict(num_samples=samples, n_steps=iterations, var_scale=var_scale)
    if kind == "cem":
        return dict(common, topk=elites)
    if kind == "icem":
        return dict(common, topk=elites, noise_beta=2.0, alpha=0.1, n_elite_keep=round(0.3 * elites))
    return dict(common, topk=None, temperature=temperature)


def swm_solve(solver, state: torch.Tensor, init=None) -> torch.Tensor:
    with contextlib.redirect_stdout(io.StringIO()):  # the solvers print one line per solve
        out = solver.solve({"state": state}, init_action=init)
    return out["actions"]


# ---------------------------------------------------------------------------------------------
# task 1: batched point mass


DT = 0.1


def point_mass_dynamics(state: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """state [K, 6] = (x, y, vx, vy, goal_x, goal_y), u [K, 2] acceleration in [-1, 1]^2."""
    u = u.clamp(-1.0, 1.0)
    vel = state[:, 2:4] + DT * u
    pos = state[:, 0:2] + DT * vel
    return torch.cat([pos, vel, state[:, 4:]], dim=1)


def point_mass_cost(state: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Running cost on the state after the step: squared distance to the goal + a small effort term."""
    return ((state[:, 0:2] - state[:, 4:6]) ** 2).sum(-1) + 0.01 * (u.clamp(-1.0, 1.0) ** 2).sum(-1)


def rollout_objective(state: torch.Tensor, dynamics, cost):
    """objective(actions [B, N, H, A]) -> [B, N]: the summed running cost of a rollout from state [B, nx]."""

    def objective(actions: torch.Tensor) -> torch.Tensor:
        b, n, h, a = actions.shape
        s = state[:, None].expand(b, n, state.shape[-1]).reshape(b * n, -1)
        total = torch.zeros(b * n, dtype=actions.dtype)
        for t in range(h):
            u = actions[:, :, t].reshape(b * n, a)
            s = dynamics(s, u)
            total = total + cost(s, u)
        return total.view(b, n)

    return objective


@dataclass
class Row:
    task: str
    planner: str
    seconds: float | None = None
    cost: float | None = None
    success: str = ""
    note: str = ""
    extra: dict = field(default_factory=dict)


def point_mass_start(batch: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(batch, 2, generator=g) * 2 - 1
    goal = torch.rand(batch, 2, generator=g) * 2 - 1
    return torch.cat([pos, torch.zeros(batch, 2), goal], dim=1)


def round_robin(solvers: dict, repeats: int) -> dict[str, tuple[float, list]]:
    """Time every solver `repeats` times, interleaved (solver order inside each round), so that load
    changes on a shared machine hit every solver alike. Returns name -> (median seconds, outputs)."""
    for solve in solvers.values():
        solve(99)  # warm-up: lazy imports, allocator
    times: dict[str, list[float]] = {name: [] for name in solvers}
    outs: dict[str, list] = {name: [] for name in solvers}
    for r in range(repeats):
        for name, solve in solvers.items():
            t0 = time.perf_counter()
            outs[name].append(solve(r))
            times[name].append(time.perf_counter() - t0)
    return {name: (statistics.median(times[name]), outs[name]) for name in solvers}


def bench_point_mass(args, swm, swm_note, mppi_cls, mppi_note) -> list[Row]:
    B, H, A, N, iters, elites = args.batch, 16, 2, args.samples, args.iterations, max(2, args.samples // 10)
    state = point_mass_start(B)
    objective = rollout_objective(state, point_mass_dynamics, point_mass_cost)
    box = dict(batch_size=B, horizon=H, action_dim=A, low=-1.0, high=1.0)

    def final_cost(plan: torch.Tensor) -> float:
        with torch.no_grad():
            return float(objective(plan.clamp(-1, 1)[:, None]).mean())

    solvers: dict = {}
    missing: list[Row] = []
    ours = {
        "CEM": CEM(population=N, n_elites=elites, iterations=iters, init_std=0.5),
        "iCEM": ICEM(
            population=N, n_elites=elites, iterations=iters, population_decay=1.0, beta=2.0, momentum=0.1
        ),
        "MPPI": MPPI(population=N, iterations=iters, noise_std=0.5, temperature=args.temperature),
    }
    for name, planner in ours.items():
        solvers[f"ours {name}"] = lambda r, p=planner: p.plan(objective, seed=r, **box).actions

    swm_kw = {  # name -> (solver kind, problems per cost call)
        "CEM": ("cem", B), "iCEM": ("icem", B), "MPPI": ("mppi", B), "CEM (its default batch_size=1)": ("cem", 1),
    }
    model = SwmCost(lambda s: rollout_objective(s, point_mass_dynamics, point_mass_cost))
    for name, (kind, per_call) in swm_kw.items():
        if swm is None:
            missing.append(Row("point mass", f"stable-worldmodel {name}", note=swm_note))
            continue
        kw = swm_settings(kind, N, elites, iters, 0.5, args.temperature)

        def solve(r, kind=kind, per_call=per_call, kw=kw):
            solver = swm_solver(
                swm, kind, model, batch=B, horizon=H, action_dim=A, low=-1.0, high=1.0, seed=r, **kw
            )
            solver.batch_size = per_call
            return swm_solve(solver, state)

        solvers[f"stable-worldmodel {name}"] = solve

    if mppi_cls is None:
        missing.append(Row("point mass", "pytorch-mppi MPPI", note=mppi_note))
    else:

        def solve_mppi(r):
            torch.manual_seed(r)  # pytorch-mppi samples from torch's global generator
            ctrl = mppi_cls(
                point_mass_dynamics,
                point_mass_cost,
                6,
                torch.eye(A) * 0.5**2,
                B,
                num_samples=N,
                horizon=H,
                lambda_=args.temperature,
                u_min=torch.full((A,), -1.0),
                u_max=torch.full((A,), 1.0),
            )
            ctrl.U = torch.zeros(B, H, A)  # same start as ours: the centre of the box
            for _ in range(iters):
                ctrl.command(state[:, :6], shift_nominal_trajectory=False)
            return ctrl.U

        solvers["pytorch-mppi MPPI"] = solve_mppi

    timed = round_robin(solvers, args.repeats)
    rows = [
        Row("point mass", name, sec, statistics.mean(final_cost(a) for a in outs))
        for name, (sec, outs) in timed.items()
    ]
    return rows + missing


# ---------------------------------------------------------------------------------------------
# task 2: Pendulum swing-up under MPC

G, M, L, PEND_DT, MAX_SPEED, MAX_TORQUE = 10.0, 1.0, 1.0, 0.05, 8.0, 2.0


def angle_normalize(x: torch.Tensor) -> torch.Tensor:
    return ((x + math.pi) % (2 * math.pi)) - math.pi


def pendulum_dynamics(state: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """gymnasium Pendulum-v1's step in torch: state [K, 2] = (theta, theta_dot), theta 0 = upright."""
    th, thdot = state[:, 0:1], state[:, 1:2]
    u = u.clamp(-MAX_TORQUE, MAX_TORQUE)
    newthdot = thdot + (3 * G / (2 * L) * torch.sin(th) + 3.0 / (M * L**2) * u) * PEND_DT
    newthdot = newthdot.clamp(-MAX_SPEED, MAX_SPEED)
    return torch.cat([th + newthdot * PEND_DT, newthdot], dim=1)


def pendulum_cost(state: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """gymnasium's cost, on the state after the step (as pytorch-mppi's example)."""
    u = u.clamp(-MAX_TORQUE, MAX_TORQUE)[:, 0]
    return angle_normalize(state[:, 0]) ** 2 + 0.1 * state[:, 1] ** 2 + 0.001 * u**2


class PendulumBatch:
    """B gymnasium Pendulum-v1 environments; the loop's executor and the judge after the loop."""

    def __init__(self, batch: int, seed: int):
        import gymnasium as gym

        self.envs = [gym.make("Pendulum-v1") for _ in range(batch)]
        for i, env in enumerate(self.envs):
            env.reset(seed=seed + i)
        self.angles: list[list[float]] = [[] for _ in self.envs]
        self.cost = 0.0

    def states(self) -> torch.Tensor:
        return torch.tensor(np.stack([env.unwrapped.state for env in self.envs]), dtype=torch.float32)

    def step(self, actions) -> None:
        actions = torch.as_tensor(actions).reshape(len(self.envs), -1, 1)
        for t in range(actions.shape[1]):
            for i, env in enumerate(self.envs):
                _, reward, *_ = env.step(actions[i, t].numpy().astype(np.float32))
                self.cost -= float(reward)
                self.angles[i].append(float(angle_normalize(torch.tensor(env.unwrapped.state[0]))))

    def success(self, last: int = 50, tolerance: float = 0.3) -> list[bool]:
        """Swing-up success, judged after the loop: upright within 0.3 rad for each of the last 50 steps."""
        return [all(abs(a) < tolerance for a in angles[-last:]) for angles in self.angles]


def bench_pendulum(args, swm, swm_note, mppi_cls, mppi_note) -> list[Row]:
    B, H, A, N, iters, steps = args.batch, 15, 1, args.pendulum_samples, args.pendulum_iterations, 200
    elites = max(2, N // 10)
    sigma = math.sqrt(10.0)  # pytorch-mppi's Pendulum example: noise variance 10 (torque units)
    rel = sigma / MAX_TORQUE
    box = dict(batch_size=B, horizon=H, action_dim=A, low=-MAX_TORQUE, high=MAX_TORQUE)
    runners: dict = {}  # name -> episode() -> (env, seconds per replan)
    missing: list[Row] = []

    ours = {
        "CEM": CEM(population=N, n_elites=elites, iterations=iters, init_std=rel),
        "iCEM": ICEM(population=N, n_elites=elites, iterations=iters, population_decay=1.0, init_std=rel),
        "MPPI": MPPI(population=N, iterations=iters, noise_std=rel, temperature=1.0),
    }
    for name, planner in ours.items():

        def episode(planner=planner):
            env = PendulumBatch(B, seed=args.seed)
            out = run_mpc(
                planner,
                lambda: rollout_objective(env.states(), pendulum_dynamics, pendulum_cost),
                env.step,
                n_execute=1,
                budget_steps=steps,
                seed=args.seed,
                **box,
            )
            return env, out.plan_seconds

        runners[f"ours {name}"] = episode

    swm_kw = {"CEM": "cem", "iCEM": "icem", "MPPI": "mppi"}
    model = SwmCost(lambda s: rollout_objective(s, pendulum_dynamics, pendulum_cost))
    for name, kind in swm_kw.items():
        if swm is None:
            missing.append(Row("Pendulum MPC", f"stable-worldmodel {name}", note=swm_note))
            continue
        kw = swm_settings(kind, N, elites, iters, sigma, 1.0)

        def episode(kind=kind, kw=kw):
            env = PendulumBatch(B, seed=args.seed)
            solver = swm_solver(
                swm, kind, model, batch=B, horizon=H, action_dim=A, low=-MAX_TORQUE, high=MAX_TORQUE,
                seed=args.seed, **kw,
            )
            plan, seconds = None, []
            for _ in range(steps):
                states = env.states()
                t0 = time.perf_counter()
                plan = swm_solve(
                    solver, states, None if plan is None else plan[:, 1:]
                )  # it pads the end with 0
                seconds.append(time.perf_counter() - t0)
                env.step(plan[:, :1].clamp(-MAX_TORQUE, MAX_TORQUE))
            return env, seconds

        runners[f"stable-worldmodel {name}"] = episode

    if mppi_cls is None:
        missing.append(Row("Pendulum MPC", "pytorch-mppi MPPI", note=mppi_note))
    else:

        def episode_mppi():
            torch.manual_seed(args.seed)
            env = PendulumBatch(B, seed=args.seed)
            ctrl = mppi_cls(
                pendulum_dynamics,
                pendulum_cost,
                2,
                torch.eye(A) * sigma**2,
                B,
                num_samples=N,
                horizon=H,
                lambda_=1.0,
                u_min=torch.full((A,), -MAX_TORQUE),
                u_max=torch.full((A,), MAX_TORQUE),
            )
            seconds = []
            for _ in range(steps):
                states = env.states()
                t0 = time.perf_counter()
                action = ctrl.command(states, shift_nominal_trajectory=True)  # it shifts its own plan
                for _ in range(iters - 1):
                    action = ctrl.command(states, shift_nominal_trajectory=False)
                seconds.append(time.perf_counter() - t0)
                env.step(action.reshape(B, 1, A))
            return env, seconds

        runners["pytorch-mppi MPPI"] = episode_mppi

    # Rounds in rotated order, so load changes on a shared machine hit every planner alike; the
    # episodes themselves are seeded and identical across rounds.
    names = list(runners)
    per_round: dict[str, list[float]] = {name: [] for name in names}
    envs = {}
    for r in range(args.pendulum_rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            envs[name], seconds = runners[name]()
            per_round[name].append(statistics.mean(seconds))
    rows = []
    for name in names:
        ok = envs[name].success()
        cost = envs[name].cost / B
        rows.append(
            Row("Pendulum MPC", name, statistics.median(per_round[name]), cost, f"{sum(ok)}/{len(ok)}")
        )
    return rows + missing


# ---------------------------------------------------------------------------------------------
# task 3: iCEM vs CEM sample efficiency


def bench_icem_samples(args) -> Table:
    B, H, A = args.batch, 16, 2
    state = point_mass_start(B, seed=1)
    objective = rollout_objective(state, point_mass_dynamics, point_mass_cost)
    box = dict(batch_size=B, horizon=H, action_dim=A, low=-1.0, high=1.0)
    seeds = range(args.repeats)
    cem = CEM(population=args.samples, n_elites=max(2, args.samples // 10), iterations=args.iterations)
    cem_results = [cem.plan(objective, seed=s, **box) for s in seeds]
    cem_cost = statistics.mean(float(r.costs.mean()) for r in cem_results)
    cem_samples = cem_results[0].n_samples

    best: tuple[int, int] | None = None  # (samples, population)
    for population in (16, 24, 32, 48, 64, 96, 128, 192, 256):
        if population > args.samples:
            break
        icem = ICEM(population=population, n_elites=max(4, population // 10), iterations=args.iterations)
        curves = []
        for s in seeds:
            r = icem.plan(objective, seed=s, **box)
            best_so_far = torch.cummin(r.history.best, dim=0).values.mean(dim=1)  # [I] mean over problems
            curves.append(best_so_far)
        mean_curve = torch.stack(curves).mean(dim=0)
        cumulative = np.cumsum(r.history.n_samples)
        hit = (mean_curve <= cem_cost).nonzero()
        if len(hit):
            samples = int(cumulative[int(hit[0, 0])])
            if best is None or samples < best[0]:
                best = (samples, population)
    table = Table(title=f"iCEM vs CEM on the point mass (B={B}, H=16; mean over {len(seeds)} seeds)")
    for col in ("planner", "samples per problem", "final cost", "samples vs CEM (target <= 0.33)"):
        table.add_column(col, justify="left" if col == "planner" else "right")
    table.add_row(f"CEM {args.samples} x {args.iterations}", str(cem_samples), f"{cem_cost:.3f}", "1.00")
    if best is None:
        table.add_row("iCEM (paper defaults)", "-", "-", "[red]never reached CEM's cost")
    else:
        ratio = best[0] / cem_samples
        colour = "[green]" if ratio <= 1 / 3 else "[red]"
        table.add_row(
            f"iCEM population {best[1]} (decay 1.25, keep 30%, beta 2)",
            str(best[0]),
            f"<= {cem_cost:.3f}",
            f"{colour}{ratio:.2f}",
        )
    return table


# ---------------------------------------------------------------------------------------------


def peer_table(title: str, rows: list[Row], with_success: bool) -> Table:
    table = Table(title=title)
    cols = (
        ["planner", "s / solve", "peer / ours time", "final cost"]
        + (["swing-up success"] if with_success else [])
        + ["note"]
    )
    for col in cols:
        table.add_column(col, justify="left" if col in ("planner", "note") else "right", overflow="fold")
    ours = {r.planner.split()[1]: r for r in rows if r.planner.startswith("ours")}
    for r in rows:
        if r.seconds is None:
            cells = [r.planner, "-", "-", "-"] + (["-"] if with_success else []) + [f"[yellow]{r.note}"]
        else:
            mine = ours.get(r.planner.split()[1])  # the same algorithm of ours
            speed = (
                "-" if r.planner.startswith("ours") or mine is None else f"{r.seconds / mine.seconds:.2f}x"
            )
            cells = (
                [r.planner, f"{r.seconds:.4f}", speed, f"{r.cost:.3f}"]
                + ([r.success] if with_success else [])
                + [r.note]
            )
        table.add_row(*cells)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--samples", type=int, default=256, help="point mass: population per iteration")
    parser.add_argument("--iterations", type=int, default=10, help="point mass: iterations per solve")
    parser.add_argument("--temperature", type=float, default=1.0, help="MPPI temperature (all MPPIs)")
    parser.add_argument("--pendulum-samples", type=int, default=100)
    parser.add_argument("--pendulum-iterations", type=int, default=2)
    parser.add_argument("--pendulum-rounds", type=int, default=3, help="timing rounds, in rotated order")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-overhead", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    mppi_cls, mppi_note = load_pytorch_mppi()
    swm, swm_note = load_stable_worldmodel()
    console.print(f"pytorch-mppi: {'loaded' if mppi_cls else mppi_note}")
    console.print(
        f"stable-worldmodel: {('loaded' + (f' - {swm_note}' if swm_note else '')) if swm else swm_note}"
    )

    rows = bench_point_mass(args, swm, swm_note, mppi_cls, mppi_note)
    console.print(
        peer_table(
            f"Point mass, B={args.batch}, H=16, {args.samples} samples x {args.iterations} iterations per solve "
            f"(median of {args.repeats} solves; peer / ours > 1 means ours is faster)",
            rows,
            with_success=False,
        )
    )
    rows = bench_pendulum(args, swm, swm_note, mppi_cls, mppi_note)
    console.print(
        peer_table(
            f"Pendulum-v1 swing-up, {args.batch} envs x 200 steps, MPC executing 1 action per replan, H=15, "
            f"{args.pendulum_samples} samples x {args.pendulum_iterations} iterations; s / solve = median over "
            f"{args.pendulum_rounds} rounds of the mean per replan; cost = mean episode cost (gym's); success = "
            "within 0.3 rad of upright for each of the last 50 steps, judged after the loop",
            rows,
            with_success=True,
        )
    )
    console.print(bench_icem_samples(args))
    if not args.skip_overhead:
        sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
        from planner_overhead import measure, overhead_table

        console.print(
            overhead_table(
                measure(4, 16, 2, 20, 512),
                "Planner overhead at population 256 (B=4, H=16, A=2, MLP objective, 20 iterations)",
            )
        )


if __name__ == "__main__":
    main()
