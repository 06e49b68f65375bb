"""`shelfwatch fleet status|rollout|rollback|simulate`: device groups over MQTT (docs/SCALE.md, docs/MQTT.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edge.commands import command_group
from edge.errors import ShelfwatchError


def _broker(args: argparse.Namespace) -> Any:
    import os

    from edge.comms.link import BrokerAddress

    password = os.environ.get(args.password_env) if args.password_env else None
    return BrokerAddress.parse(
        args.broker, username=args.username, password=password, ca_file=Path(args.ca) if args.ca else None
    )


def _controller(args: argparse.Namespace) -> Any:
    import uuid

    from edge.comms.link import MqttLink
    from edge.fleet.rollout import FleetController

    link = MqttLink(_broker(args), f"shelfwatch-fleet-{uuid.uuid4().hex[:8]}").connect()
    return link, FleetController(link, args.prefix).start(settle_s=args.settle)


def _print(args: argparse.Namespace, obj: dict[str, Any], text: str) -> None:
    if args.json:
        from edge.cli import print_json

        print_json(obj)
    else:
        print(text)


def cmd_status(args: argparse.Namespace) -> int:
    """Each device of the group: version, state, reason; and the group's announcement."""
    link, controller = _controller(args)
    try:
        status = controller.status(args.group)
    finally:
        link.close()
    lines = [f"group {args.group}: {len(status['devices'])} device(s), announced {status['announced']}"]
    lines += [
        f"  {d['device']}: {d['version']} {d['state']}" + (f" ({d['reason']})" if d["reason"] else "")
        for d in status["devices"]
    ]
    _print(args, status, "\n".join(lines))
    return 0


def _trainer_bundle(args: argparse.Namespace, dest: Path) -> str:
    """Download a succeeded job's bundle from the trainer into dest; the URL devices fetch it from."""
    import os
    import urllib.error
    import urllib.request

    if not args.job:
        raise ShelfwatchError("--trainer needs --job JOB_ID (a succeeded training job)")
    token = os.environ.get(args.token_env or "", "")
    if not token:
        raise ShelfwatchError(f"set the trainer token in the environment variable {args.token_env or '(--token-env)'}")
    url = f"{args.trainer.rstrip('/')}/v1/jobs/{args.job}/bundle"
    if not url.startswith(("http://", "https://")):
        raise ShelfwatchError(f"--trainer {args.trainer!r} must be an http(s) URL")
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310 - http(s) only
    try:
        with urllib.request.urlopen(request, timeout=120) as resp, dest.open("wb") as out:  # noqa: S310
            while chunk := resp.read(1 << 20):
                out.write(chunk)
    except urllib.error.HTTPError as err:
        raise ShelfwatchError(f"the trainer answered {err.code} for {url}: {err.read()[:200]!r}") from err
    except OSError as err:
        raise ShelfwatchError(f"cannot reach the trainer at {args.trainer}: {err}") from err
    return url


def cmd_rollout(args: argparse.Namespace) -> int:
    """A staged rollout of a bundle archive to a group: canaries first; exit 1 when it halts."""
    import tempfile

    from edge.bundle import inspect_bundle, load_private_key, sha256_file
    from edge.fleet.contract import BundleRef

    key = load_private_key(args.signing_key)
    with tempfile.TemporaryDirectory(prefix="shelfwatch-fleet-") as tmp:
        if args.trainer:
            archive = Path(tmp) / "bundle.tar.gz"
            url = _trainer_bundle(args, archive)
        else:
            if not args.bundle or not args.url:
                raise ShelfwatchError("give --bundle FILE.tar.gz and --url URL, or --trainer URL --job JOB_ID")
            archive, url = Path(args.bundle), args.url
            if not archive.is_file():
                raise ShelfwatchError(f"--bundle {archive} is not a .tar.gz file (shelfwatch bundle pack makes one)")
        ref = BundleRef(version=inspect_bundle(archive).version, sha256=sha256_file(archive), url=url)
    link, controller = _controller(args)
    try:
        result = controller.rollout(
            args.group,
            ref,
            key,
            canary_share=args.canary_share,
            canary_deadline_s=args.canary_deadline,
            deadline_s=args.deadline,
        )
    finally:
        link.close()
    out = result.as_dict()
    _print(args, out, f"rollout of {ref.version} to {args.group}: {result.outcome} ({result.reason or 'all healthy'})")
    return 0 if result.outcome == "completed" else 1


def cmd_rollback(args: argparse.Namespace) -> int:
    """Announce the group's previous version to every device of the group."""
    from edge.bundle import load_private_key

    key = load_private_key(args.signing_key)
    link, controller = _controller(args)
    try:
        announcement = controller.rollback(args.group, key)
    finally:
        link.close()
    out = {"group": args.group, "version": announcement.version, "stage": announcement.stage}
    _print(args, out, f"group {args.group}: announced {announcement.version} again (rollback)")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    """N simulated devices against a broker; one JSON line of measurements with --json."""
    import uuid

    from edge.fleet.simulate import SimConfig, simulate

    if args.rollout and not (args.bundle and args.signing_key):
        raise ShelfwatchError("--rollout needs --bundle B.tar.gz and --signing-key K.pem (the key devices trust)")
    result = simulate(
        SimConfig(
            devices=args.devices,
            broker=_broker(args),
            seconds=args.seconds,
            prefix=args.prefix,
            group=args.group or f"sim-{uuid.uuid4().hex[:6]}",  # a fresh group: no announcement retained from before
            event_interval_s=args.event_interval,
            rollout_bundle=Path(args.bundle) if args.rollout else None,
            signing_key=Path(args.signing_key) if args.rollout else None,
            canary_share=args.canary_share,
            canary_deadline_s=args.canary_deadline,
            rollout_deadline_s=args.deadline,
            tampered=args.tampered,
            seed=args.seed,
        )
    )
    text = ", ".join(f"{k} {v}" for k, v in result.items() if k != "rollout")
    if "rollout" in result:
        text += f"\nrollout: {result['rollout']}"
    _print(args, result, text)
    return 0


def _common(p: argparse.ArgumentParser, *, group_required: bool = True) -> None:
    p.add_argument("--broker", default="127.0.0.1:1883", help="MQTT broker HOST:PORT")
    p.add_argument("--username", default=None, help="MQTT user name")
    p.add_argument("--password-env", default=None, help="environment variable holding the MQTT password")
    p.add_argument("--ca", default=None, help="CA file: connect with TLS")
    p.add_argument("--prefix", default="shelfwatch", help="MQTT topic prefix")
    p.add_argument("--group", required=group_required, default=None, help="device group")
    p.add_argument("--settle", type=float, default=1.0, help="seconds without new retained messages = all read")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def _rollout_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--canary-share", type=float, default=0.05, help="share of the group updated first (0-1)")
    p.add_argument("--canary-deadline", type=float, default=120.0, help="seconds canaries have to report healthy")
    p.add_argument("--deadline", type=float, default=600.0, help="seconds the whole group has after the canaries")


def register(sub: Any) -> None:
    """Add `shelfwatch fleet ...`."""
    fleet_sub = command_group(
        sub, "fleet", "Device groups: status, staged rollouts, rollback, simulation.", metavar="COMMAND"
    )

    status = fleet_sub.add_parser("status", help="Each device of a group: model version and state.")
    _common(status)
    status.set_defaults(func=cmd_status)

    rollout = fleet_sub.add_parser("rollout", help="Announce a signed bundle to a group, canaries first.")
    _common(rollout)
    rollout.add_argument("--bundle", default=None, help="the bundle .tar.gz (version and sha256 are read from it)")
    rollout.add_argument("--url", default=None, help="where devices fetch that file (http(s))")
    rollout.add_argument("--trainer", default=None, help="or: the trainer's URL; devices fetch the job's bundle there")
    rollout.add_argument("--job", default=None, help="with --trainer: the succeeded job whose bundle to roll out")
    rollout.add_argument("--token-env", default="TRAINER_TOKEN", help="environment variable with the trainer token")
    rollout.add_argument("--signing-key", required=True, help="ed25519 private key the devices trust (PEM)")
    _rollout_args(rollout)
    rollout.set_defaults(func=cmd_rollout)

    rollback = fleet_sub.add_parser("rollback", help="Return a group to its previously announced version.")
    _common(rollback)
    rollback.add_argument("--signing-key", required=True, help="ed25519 private key the devices trust (PEM)")
    rollback.set_defaults(func=cmd_rollback)

    simulate = fleet_sub.add_parser("simulate", help="N simulated devices against a real broker; measurements.")
    _common(simulate, group_required=False)
    simulate.add_argument("--devices", type=int, default=100, help="simulated devices")
    simulate.add_argument("--seconds", type=float, default=30.0, help="seconds of event traffic")
    simulate.add_argument("--event-interval", type=float, default=10.0, help="mean seconds between a device's events")
    simulate.add_argument("--rollout", action="store_true", help="run a staged rollout of --bundle to every device")
    simulate.add_argument("--bundle", default=None, help="bundle .tar.gz for --rollout")
    simulate.add_argument("--signing-key", default=None, help="its signing key (the simulated devices trust it)")
    simulate.add_argument("--tampered", action="store_true", help="serve a corrupted copy: the canaries must fail")
    simulate.add_argument("--seed", type=int, default=0, help="random seed (canaries, event times)")
    _rollout_args(simulate)
    simulate.set_defaults(func=cmd_simulate)
