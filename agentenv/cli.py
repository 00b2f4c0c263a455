"""The ``agentenv`` command line: list envs, play an episode, collect rollouts, show a store."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agentenv.messages import content_text
from agentenv.trajectory import Trajectory, Turn

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="agentenv: environments, token-exact rollouts and trainers for LLM agents.")
console = Console()
err = Console(stderr=True)

PolicyOpt = Annotated[str, typer.Option("--policy", "-p", help="random | expert | human | replay:DIR | "
                                                               "smollm2-135m-instruct | hf:PATH | "
                                                               "http://HOST:PORT/v1 (an OpenAI-compatible server; "
                                                               "several joined by commas are balanced)")]
EnvArgOpt = Annotated[list[str] | None, typer.Option("--env-arg", "-e", help="env keyword argument KEY=VALUE "
                                                                               "(VALUE parsed as JSON if it can be)")]


def parse_kv(items: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _policy(spec: str, **kwargs: Any) -> Any:
    from agentenv.policies import make_policy

    return make_policy(spec, **kwargs)


@app.command()
def envs() -> None:
    """List the registered environments with their families and descriptions."""
    from agentenv.registry import registered_envs

    table = Table(title="registered environments")
    for col in ("id", "family", "description", "from"):
        table.add_column(col)
    for info in registered_envs():
        table.add_row(info.id, info.family, info.description, info.source)
    console.print(table)


@app.command()
def play(
    env_id: Annotated[str, typer.Argument(help="environment id, e.g. agentenv/Maze-v0")],
    policy: PolicyOpt = "human",
    seed: int = 0,
    env_arg: EnvArgOpt = None,
    max_tokens: int = 256,
    temperature: float = 0.0,
) -> None:
    """Play one episode and print it turn by turn."""
    from agentenv.collector import CollectConfig, Collector
    from agentenv.policy import SamplingParams

    cfg = CollectConfig(env_id=env_id, seed=seed, env_kwargs=parse_kv(env_arg), concurrency=1, progress="off",
                        sampling=SamplingParams(max_tokens=max_tokens, temperature=temperature),
                        policy_timeout=86_400.0)
    shown = [False]

    def show_turn(traj: Trajectory, turn: Turn) -> None:
        if not shown[0]:
            shown[0] = True
            _print_messages(turn.observation)
        console.print(f"[bold cyan]> {escape(turn.action)}[/]")
        _print_messages(turn.feedback)

    collector = Collector(cfg, _policy(policy), on_turn=show_turn)
    summary = collector.run()
    traj = collector.trajectories[0]
    if traj.status == "failed":
        err.print(f"[red]episode failed ({traj.failure_cause}): {escape(str(traj.error))}")
    console.print(f"[bold]reward {traj.reward:g} after {len(traj.turns)} turns "
                  f"({'solved' if traj.success else 'truncated' if traj.truncated else 'ended'})")
    del summary


@app.command()
def collect(
    env_id: Annotated[str, typer.Argument(help="environment id")],
    out: Annotated[Path, typer.Option("--out", "-o", help="store directory (re-running resumes)")],
    policy: PolicyOpt = "random",
    n: Annotated[int, typer.Option("-n", help="number of tasks")] = 8,
    g: Annotated[int, typer.Option("-g", help="samples per task (group size)")] = 1,
    k: Annotated[int, typer.Option("-k", help="concurrent episodes")] = 8,
    seed: int = 0,
    env_arg: EnvArgOpt = None,
    max_tokens: int = 256,
    temperature: float = 1.0,
    top_logprobs: int = 0,
    window: Annotated[int | None, typer.Option(help="past turns kept in the prompt (default: all)")] = None,
    env_timeout: float = 120.0,
    policy_timeout: float = 600.0,
    episode_timeout: float = 3600.0,
    env_retries: int = 0,
    progress: Annotated[str, typer.Option(help="auto | bar | log | off")] = "auto",
    tokenizer: Annotated[str | None, typer.Option(help="with a server policy: render prompts with this tokenizer "
                                                       "(catalog name or directory) and send token ids "
                                                       "(token-exact)")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="AGENTENV_API_KEY", help="with a server policy")] = None,
    ray: Annotated[str | None, typer.Option("--ray", help="play the episodes on a Ray cluster: local (start Ray "
                                                         "here), auto (the cluster `ray start` runs on this "
                                                         "machine) or the head's HOST:PORT")] = None,
    ray_workers: Annotated[int | None, typer.Option(help="with --ray: env workers (default: as many as the "
                                                         "cluster places); -k is split between them")] = None,
    census: Annotated[bool, typer.Option("--census", help="check that the run leaves no process, fd, mount, "
                                                          "temp dir or container behind")] = False,
) -> None:
    """Collect N tasks x G samples with K concurrent episodes into a resumable trajectory store."""
    from agentenv.collector import CollectConfig, Collector
    from agentenv.policy import SamplingParams
    from agentenv.prompting import PromptConfig
    from agentenv.store import TrajectoryStore

    cfg = CollectConfig(
        env_id=env_id, n_tasks=n, group_size=g, concurrency=k, seed=seed, env_kwargs=parse_kv(env_arg),
        sampling=SamplingParams(max_tokens=max_tokens, temperature=temperature, top_logprobs=top_logprobs),
        prompt=PromptConfig(window=window), env_timeout=env_timeout, policy_timeout=policy_timeout,
        episode_timeout=episode_timeout, env_retries=env_retries, progress=progress, census=census,
    )
    server = policy.startswith(("http://", "https://"))
    if (tokenizer or api_key) and not server:
        raise typer.BadParameter("--tokenizer and --api-key apply to a server policy (http://...)")
    extra = {"tokenizer": tokenizer, "api_key": api_key, "concurrency": k} if server else {}
    if ray_workers is not None and ray is None:
        raise typer.BadParameter("--ray-workers applies with --ray")
    remote = None
    if ray is not None:
        from agentenv.ray_collect import RayEpisodes, RayOptions

        remote = RayEpisodes(RayOptions(ray, workers=ray_workers))
    collector = Collector(cfg, _policy(policy, **extra), TrajectoryStore(out), remote=remote)
    summary = collector.run()
    summary.print(console, title=f"{collector.env_id} with {collector.policy.name} -> {out}")


@app.command()
def show(
    directory: Annotated[Path, typer.Argument(help="trajectory store directory")],
    episode: Annotated[str | None, typer.Option(help="trajectory id to print (default: the first)")] = None,
) -> None:
    """Summarise a store and print one transcript, with token counts and which tokens are trained on."""
    from agentenv.store import TrajectoryStore
    from agentenv.summary import CollectSummary

    if not (directory / "manifest.json").exists() and not (directory / "shards").is_dir():
        raise FileNotFoundError(f"{directory} is not a trajectory store (no manifest.json or shards/)")
    store = TrajectoryStore(directory)
    summary = CollectSummary()
    chosen: Trajectory | None = None
    for traj in store.episodes(errors="skip"):
        summary.add([traj])
        if chosen is None and (episode is None or traj.trajectory_id == episode):
            chosen = traj
    summary.print(console, title=f"store {directory}")
    if chosen is None:
        raise ValueError(f"no episode {episode!r} in {directory}" if episode else f"{directory} holds no episodes")
    _print_transcript(chosen)


@app.command("serve-policy")
def serve_policy(
    model: Annotated[str, typer.Option(help="catalog name or model directory (vllm, embedded); store directory "
                                            "(replay)")] = "smollm2-135m-instruct",
    backend: Annotated[str, typer.Option(help="vllm | embedded | replay")] = "embedded",
    host: str = "127.0.0.1",
    port: Annotated[int, typer.Option(help="0 picks a free port")] = 8000,
    api_key: Annotated[str | None, typer.Option(envvar="AGENTENV_API_KEY", help="require this Bearer key")] = None,
    served_name: Annotated[str | None, typer.Option(help="the model name clients use (default: --model)")] = None,
    max_batch_size: Annotated[int, typer.Option(help="embedded: requests per batch")] = 16,
    tokenizer: Annotated[str | None, typer.Option(help="replay: tokenizer for text prompts and token names")] = None,
    vllm_arg: Annotated[list[str] | None, typer.Option("--vllm-arg", help="vllm: an extra argument for vLLM's "
                                                                          "server (repeatable)")] = None,
    replicas: Annotated[int, typer.Option(help="start this many servers as child processes (on consecutive "
                                               "ports from --port, or free ports with 0); prints their URLs "
                                               "joined by commas, which --policy takes")] = 1,
    tensor_parallel_size: Annotated[int, typer.Option(help="vllm: GPUs that split each replica's layers "
                                                           "(vLLM's --tensor-parallel-size)")] = 1,
    data_parallel_size: Annotated[int, typer.Option(help="vllm: engines inside each replica (vLLM's "
                                                         "--data-parallel-size)")] = 1,
) -> None:
    """Serve a policy over an OpenAI-compatible API; prints where it listens once it is ready.

    With --replicas N, N servers run as child processes (vllm: each on its own tensor x data parallel
    block of GPUs) until Ctrl-C or SIGTERM, or until one dies (then the others stop and the exit status
    is 1)."""
    from agentenv.policies.replicas import ReplicaError, Replicas, check_options, vllm_parallel_args

    try:
        check_options(backend, replicas, tensor_parallel_size=tensor_parallel_size,
                      data_parallel_size=data_parallel_size, vllm_args=vllm_arg or [], tokenizer=tokenizer)
        servers = Replicas(backend, model, replicas, host=host, port=port, api_key=api_key, served_name=served_name,
                           max_batch_size=max_batch_size, tokenizer=tokenizer, vllm_args=vllm_arg or [],
                           tensor_parallel_size=tensor_parallel_size, data_parallel_size=data_parallel_size,
                           echo=sys.stderr) if replicas > 1 else None
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    if servers is not None:
        try:
            code = servers.serve_forever()
        except ReplicaError as e:
            err.print(f"[red]error:[/] {escape(str(e))}", highlight=False)
            code = 1
        sys.exit(code)  # typer.Exit's code is lost with standalone_mode=False
    if backend == "embedded":
        from agentenv.policies.embedded_server import serve_embedded

        serve_embedded(model, host, port, api_key=api_key, served_name=served_name, max_batch_size=max_batch_size)
    elif backend == "replay":
        from agentenv.policies.replay_server import serve_replay

        serve_replay(model, host, port, api_key=api_key, name=served_name or "replay", tokenizer=tokenizer)
    elif backend == "vllm":
        from agentenv.policies.vllm_server import VLLMServer

        code = VLLMServer(model, served_model_name=served_name, host=host, port=port, api_key=api_key,
                          extra_args=[*vllm_parallel_args(tensor_parallel_size, data_parallel_size),
                                      *(vllm_arg or [])]).serve_forever()
        if code:
            sys.exit(code)


@app.command(context_settings={"allow_extra_args": False})
def train(
    algo: Annotated[str, typer.Argument(help="grpo | gigpo | hgpo | dagger | arpo | aepo | appo | trace | dynaweb "
                                             "| wwm (DynaWeb's web world model, trained on --data)")],
    overrides: Annotated[list[str] | None, typer.Argument(help="option overrides key=value (see "
                                                                 "agentenv/trainers/config.py)")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="a YAML run config")] = None,
    env: Annotated[str | None, typer.Option(help="environment id (or env server URL)")] = None,
    model: Annotated[str | None, typer.Option(help="catalog name or model directory")] = None,
    out: Annotated[str | None, typer.Option("--out", "-o", help="run directory")] = None,
    policy: Annotated[str | None, typer.Option(help="URL of a policy server serving MODEL that collects and "
                                                    "receives each update (several joined by commas: replicas, "
                                                    "balanced, each updated; default: in-process)")] = None,
    data: Annotated[list[str] | None, typer.Option("--data", help="wwm: a trajectory store or transitions "
                                                                  ".jsonl to learn from (repeatable)")] = None,
) -> None:
    """Train a policy: collect, compute advantages, update, push the weights, repeat; writes metrics.jsonl,
    checkpoints and plots.png in the run directory. `train wwm --data STORE` fine-tunes a web world model."""
    if algo == "wwm":
        if env is not None or policy is not None:
            raise typer.BadParameter("wwm learns from --data; --env and --policy do not apply")
        _train_world_model(data, str(config) if config else None, overrides or [], model, out)
        return
    if data:
        raise typer.BadParameter(f"--data is the world model's training data (train wwm); {algo} collects its own")
    from agentenv.trainers.config import load_config
    from agentenv.trainers.loop import Trainer

    extra = [f"{k}={v}" for k, v in (("env", env), ("model", model), ("out", out), ("policy", policy))
             if v is not None]
    cfg, _ = load_config(algo, str(config) if config else None, [*(overrides or []), *extra])
    with Trainer(cfg) as trainer:
        history = trainer.run()
        if not trainer.dist.is_main:  # under torchrun rank 0 reports
            return
    evals = [r for r in history if "eval_success" in r]
    if len(evals) >= 2:
        first, last = evals[0], evals[-1]
        shown = [k for k in ("eval_success", "eval_teacher_agreement", "eval_valid_actions", "eval_reward")
                 if k in first and k in last]
        console.print(f"held-out, step {first['step']} → step {last['step']}: " + ", ".join(
            f"{k.removeprefix('eval_').replace('_', ' ')} {first[k]:.3g} → {last[k]:.3g}" for k in shown))
    steps = max((int(r["step"]) for r in history), default=0)
    console.print(f"trained {cfg.algo} to step {steps}: metrics in {cfg.out}/metrics.jsonl, "
                  f"plots in {cfg.out}/plots.png")


def _train_world_model(data: list[str] | None, config: str | None, overrides: list[str], model: str | None,
                       out: str | None) -> None:
    """`train wwm`: fine-tune the world model, then show its held-out metrics against the copy baseline."""
    from agentenv.trainers.world_model import METRICS, load_world_model_config, train_world_model

    cfg = load_world_model_config(config, overrides, data=data or None, model=model, out=out)
    result = train_world_model(cfg)
    d = result["data"]
    console.print(f"{d['train']} train / {d['held_out']} held-out transitions ({d['train_tasks']} / "
                  f"{d['held_out_tasks']} tasks; {d['evaluated']} evaluated, {d['skipped_too_long']} skipped as "
                  f"too long); trained {result['train_seconds']:.0f} s at {result['train_tokens_per_s']:.0f} "
                  "tokens/s")
    table = Table(title=f"world model, held-out ({cfg.out})")
    for col in ("metric", "before", "after", "copy baseline"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for key in METRICS:
        table.add_row(key.replace("_", " "), *(f"{result[k][key]:.3f}" if key in result[k] else "-"
                                                        for k in ("before", "after", "baseline")))
    console.print(table)
    console.print(f"model in {cfg.out}/model, metrics in {cfg.out}/metrics.jsonl, plots in {cfg.out}/plots.png")


@app.command()
def transitions(
    stores: Annotated[list[Path], typer.Argument(help="trajectory store directories (or transitions .jsonl)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="the transitions .jsonl to write")],
    labeler: Annotated[str | None, typer.Option(help="a policy spec that writes each transition's reasoning "
                                                     "trace (default: none)")] = None,
    max_tokens: Annotated[int, typer.Option(help="the labeler's tokens per reasoning trace")] = 96,
) -> None:
    """Extract the world model's transitions (task, page, action, next page, reward) from web episodes."""
    from collections import Counter

    from agentenv.envs.web.transitions import LLMLabeler, load_transitions, write_transitions

    items = load_transitions(stores)
    if not items:
        raise typer.BadParameter(f"no transitions in {', '.join(map(str, stores))} (web episodes with valid "
                                 "actions)")
    if labeler is not None:
        items = LLMLabeler(_policy(labeler), max_tokens=max_tokens).label(items)
    n = write_transitions(items, out)
    table = Table(title=f"{n} transitions -> {out}")
    for col in ("", "transitions", "page changed"):
        table.add_column(col, justify="left" if not col else "right")
    changed = [not t.delta.is_empty for t in items]
    for kind, key in (("env", lambda t: t.env_id), ("policy", lambda t: t.policy)):
        counts: Counter[str] = Counter()
        moved: Counter[str] = Counter()
        for t, c in zip(items, changed, strict=True):
            counts[key(t)] += 1
            moved[key(t)] += c
        for name, count in sorted(counts.items()):
            table.add_row(f"{kind} {escape(name)}", str(count), f"{moved[name] / count:.0%}")
    table.add_row("all", str(n), f"{sum(changed) / n:.0%}")
    if labeler is not None:
        table.add_row("with reasoning", str(sum(t.reasoning is not None for t in items)), "")
    console.print(table)


@app.command()
def plot(run: Annotated[Path, typer.Argument(help="training run directory")]) -> None:
    """Write RUN/plots.png from RUN/metrics.jsonl."""
    from agentenv.trainers.plots import plot_run

    console.print(f"wrote {plot_run(run)}")


alfworld_app = typer.Typer(no_args_is_help=True, help="ALFWorld: generate task files.")
app.add_typer(alfworld_app, name="alfworld")


@alfworld_app.command("generate")
def alfworld_generate(
    out: Annotated[Path, typer.Option("--out", "-o", help="folder to write <split>/<task>/<trial>/ into")],
    n: Annotated[int, typer.Option("--n", "-n", help="number of tasks")] = 60,
    split: Annotated[str, typer.Option(help="train | valid_seen | valid_unseen")] = "train",
    task_type: Annotated[str | None, typer.Option(help="one task type (default: all six in turn)")] = None,
    seed: Annotated[int, typer.Option(help="first seed")] = 0,
) -> None:
    """Generate ALFWorld problems with expert walkthroughs, in ALFWorld's own file layout."""
    from rich.progress import track

    from agentenv.envs.alfworld.engine import Game
    from agentenv.envs.alfworld.expert import Expert
    from agentenv.envs.alfworld.games import write_game
    from agentenv.envs.alfworld.generator import TASK_TYPES, generate

    types = [task_type] if task_type else list(TASK_TYPES)
    for i in track(range(n), description="generating", console=err, disable=not err.is_terminal):
        task = generate(types[i % len(types)], split, seed + i)
        plan = Expert(Game.from_pddl(task.problem, task.task_desc), task.task_type).plan()
        if plan is None:
            raise ValueError(f"the expert found no plan for {task.task_type} seed {seed + i}; this is a bug")
        write_game(task, out, plan)
    console.print(f"wrote {n} {split} games to {out}")


def _print_messages(messages: list[dict[str, Any]]) -> None:
    for m in messages:
        # Env and model text is data, not rich markup: "[stdout]" must print as written.
        console.print(f"[dim]{m['role']}:[/] {escape(content_text(m['content']))}", markup=True, highlight=False)


def _print_transcript(traj: Trajectory) -> None:
    console.rule(f"{traj.trajectory_id}  reward {traj.reward:g}  {traj.status}"
                 + (f" ({traj.failure_cause})" if traj.failure_cause else ""))
    for turn in traj.turns:
        console.print(f"[bold]turn {turn.index}[/]")
        _print_messages(turn.observation)
        full_prompt = turn.prompt_offset + len(turn.prompt_ids)
        trained = sum(turn.completion_mask)
        console.print(f"[bold cyan]> {escape(turn.action)}[/]", highlight=False)
        if turn.completion_ids or full_prompt:
            console.print(
                f"[dim]tokens: prompt {full_prompt} ({turn.prompt_offset} reused from the previous turn, "
                f"{len(turn.prompt_ids)} new; not trained) | completion {len(turn.completion_ids)} "
                f"([green]{trained} trained[/], {len(turn.completion_ids) - trained} masked) | "
                f"actor {turn.actor}[/]")
        else:
            console.print(f"[dim]tokens: none recorded (policy {traj.policy_id} gives no token ids)[/]")
        if not turn.action_valid:
            console.print(f"[yellow]invalid action: {escape(str(turn.info.get('parse_error', '')))}[/]")
    if traj.error:
        console.print(f"[red]{escape(str(traj.error))}[/]")


@app.command("serve-env")
def serve_env(
    env_id: Annotated[str, typer.Argument(help="environment id, e.g. agentenv/ALFWorld-v0")],
    port: Annotated[int, typer.Option("--port", help="TCP port (0: any free port, printed when ready)")],
    host: Annotated[str, typer.Option(help="address to bind; 0.0.0.0 exposes the env to the network")]
    = "127.0.0.1",
    env_arg: EnvArgOpt = None,
    max_sessions: Annotated[int, typer.Option(help="concurrent sessions (episodes) before 429")] = 1024,
    idle_timeout: Annotated[float, typer.Option(help="seconds before an idle session is closed")] = 600.0,
) -> None:
    """Serve an environment over HTTP, one session per episode; clients use RemoteEnv or --env http://HOST:PORT.

    Prints `agentenv env server: http://HOST:PORT (env ENV_ID)` once it listens. A client that vanishes
    mid-episode frees its session when it sends DELETE or, at the latest, after --idle-timeout seconds.
    """
    from agentenv.env_server import serve_env as run_server

    run_server(env_id, parse_kv(env_arg), host=host, port=port, max_sessions=max_sessions,
               idle_timeout_s=idle_timeout)


@app.command()
def view(
    dirs: Annotated[list[Path], typer.Argument(help="training runs, trajectory stores, or folders holding them")],
    port: Annotated[int, typer.Option("--port", help="TCP port (0: any free port)")] = 8765,
    host: Annotated[str, typer.Option(help="address to bind; the viewer has no authentication")] = "127.0.0.1",
    tokenizer: Annotated[str | None, typer.Option(help="tokenizer (catalog name or folder) for token texts; "
                                                        "default: the run's model, else the store's policy")] = None,
) -> None:
    """Browse runs and trajectories in a local web page; prints `agentenv viewer: http://HOST:PORT/` when ready."""
    from agentenv.serving import serve_app
    from agentenv.viewer import create_viewer_app

    missing = [str(d) for d in dirs if not d.is_dir()]
    if missing:
        raise FileNotFoundError(f"not a directory: {', '.join(missing)}")
    serve_app(create_viewer_app(dirs, tokenizer=tokenizer), host, port,
              ready=lambda url: f"agentenv viewer: {url}/")


def main(argv: list[str] | None = None) -> None:
    """Entry point: bad arguments and known errors get one line, not a traceback."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from agentenv.collector import EnvCreationError
    from agentenv.policy import PolicyError
    from agentenv.registry import UnknownEnvError

    try:
        code = app(argv, standalone_mode=False)
        if isinstance(code, int) and code:  # typer.Exit(n) is returned, not raised, outside standalone mode
            sys.exit(code)
    except (typer.Exit, SystemExit) as e:
        code = getattr(e, "exit_code", getattr(e, "code", 0))
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except typer.TyperException as e:  # click's usage errors (typer vendors click): bad option, missing argument
        show, exit_code = getattr(e, "show", None), getattr(e, "exit_code", 2)
        if show is not None:
            show()
        sys.exit(exit_code if isinstance(exit_code, int) else 2)
    except Exception as e:
        known = (UnknownEnvError, EnvCreationError, ValueError, PolicyError, FileNotFoundError, ImportError, OSError)
        if isinstance(e, known):
            err.print(f"[red]error:[/] {e}", highlight=False)
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
