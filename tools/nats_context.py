"""`./dev contexts [STACK ...]`: a `nats` CLI context per region from the stacks' outputs, so
`nats --context east server list` works after a deploy.

Reads each stack's `natsContext` output (`pulumi stack output natsContext --show-secrets`),
writes the CA, the admin certificate and key to files only the user can read, and the context
that points at them to `<config>/nats/context/<stack>.json` (the nats CLI's own layout).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from offline.stack_files import stack_names


def config_home() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def _private_file(path: Path, text: str) -> Path:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    path.chmod(0o600)
    return path


def write_context(name: str, output: Mapping[str, str], config_dir: Path) -> Path:
    """Write one context from a stack's `natsContext` output; returns the context file."""
    missing = {"url", "ca_pem", "cert_pem", "key_pem"} - set(output)
    if missing:
        raise ValueError(f"natsContext of {name!r} lacks {', '.join(sorted(missing))}")
    certs = _private_dir(config_dir / "nats" / "certs" / name)
    ca = _private_file(certs / "ca.pem", output["ca_pem"])
    cert = _private_file(certs / "admin.pem", output["cert_pem"])
    key = _private_file(certs / "admin-key.pem", output["key_pem"])
    context = {
        "description": output.get("description", f"NATS region {name}"),
        "url": output["url"],
        "ca": str(ca),
        "cert": str(cert),
        "key": str(key),
    }
    contexts = _private_dir(config_dir / "nats" / "context")
    return _private_file(contexts / f"{name}.json", json.dumps(context, indent=2) + "\n")


def stack_output(stack: str) -> dict[str, str]:
    """The stack's `natsContext`, through the Pulumi CLI (it decrypts the secret)."""
    try:
        result = subprocess.run(
            [
                "pulumi",
                "stack",
                "output",
                "natsContext",
                "--show-secrets",
                "--json",
                "--stack",
                stack,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    except FileNotFoundError:
        raise SystemExit("the Pulumi CLI is not on PATH; or pass --from-json") from None
    except subprocess.CalledProcessError as error:
        raise SystemExit(
            f"pulumi stack output failed for {stack!r}: {error.stderr.strip()}"
        ) from None
    output: dict[str, str] = json.loads(result.stdout)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev contexts", description=__doc__)
    parser.add_argument("stacks", nargs="*", help="stacks (default: every stack file)")
    parser.add_argument(
        "--config-dir",
        type=Path,
        default=config_home(),
        help="where the nats CLI keeps its config (default: ~/.config)",
    )
    parser.add_argument(
        "--from-json", type=Path, help="a JSON file {stack: natsContext} instead of asking Pulumi"
    )
    args = parser.parse_args(argv)
    given = json.loads(args.from_json.read_text()) if args.from_json else None
    stacks = args.stacks or (sorted(given) if given else stack_names())
    for stack in stacks:
        output = given[stack] if given else stack_output(stack)
        path = write_context(stack, output, args.config_dir)
        print(f"{stack}: {path}  (nats --context {stack} server check connection)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
