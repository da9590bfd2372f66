"""`./dev offline`: evaluate every stack offline under mocks and print what it would create.

Nothing here talks to a cloud. The resource tree is what `pulumi up -s <stack>` would register,
with the outputs the mocks answered in place of AWS, Azure and Kubernetes.
"""

from __future__ import annotations

import argparse
import sys
import time

from offline.evaluate import Evaluation, EvaluationError, evaluate_stack, qualified
from offline.monitor import Registration
from offline.stack_files import load_stack_config, project_name, stack_names, stack_needs


def render_tree(evaluation: Evaluation) -> list[str]:
    """One line per resource, indented under its parent component: `type  name`."""
    children: dict[str, list[Registration]] = {}
    urns = {r.urn for r in evaluation.resources}
    for r in evaluation.resources:
        children.setdefault(r.parent if r.parent in urns else "", []).append(r)
    lines: list[str] = []

    def walk(parent: str, depth: int) -> None:
        for r in children.get(parent, []):
            lines.append(f"{'  ' * depth}{r.type}  {r.name}")
            walk(r.urn, depth + 1)

    walk("", 0)
    return lines


def _short(value: object) -> object:
    """Multi-line values (certificates) as their first line and a line count."""
    if isinstance(value, str) and "\n" in value.strip():
        lines = value.strip().splitlines()
        return f"{lines[0]} ... ({len(lines)} lines)"
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev offline", description=__doc__)
    parser.add_argument("stacks", nargs="*", help="stacks to evaluate (default: all)")
    args = parser.parse_args(argv)
    known = stack_names()
    unknown = sorted(set(args.stacks) - set(known))
    if unknown:
        parser.error(f"no stack file for {', '.join(unknown)}; stacks: {', '.join(known)}")
    wanted = set(args.stacks or known)
    needs = stack_needs()
    while extra := {n for w in wanted for n in needs[w]} - wanted:
        wanted |= extra  # a stack is evaluated after the stacks it reads, as it is deployed
    stacks = [s for s in known if s in wanted]

    print(
        "OFFLINE: evaluating the Pulumi program under mocks; no cloud is contacted and nothing "
        "is created.\n"
    )
    done: dict[str, Evaluation] = {}
    for stack in stacks:
        started = time.perf_counter()
        outputs = {qualified(project_name(), s): e.output_values() for s, e in done.items()}
        try:
            evaluation = evaluate_stack(stack, load_stack_config(stack), stack_outputs=outputs)
        except EvaluationError as failure:
            print(f"stack {stack}: FAILED\n{failure.cause}", file=sys.stderr)
            return 1
        done[stack] = evaluation
        wall = time.perf_counter() - started
        print(
            f"== stack {stack}: {len(evaluation.resources)} resources "
            f"(evaluated in {wall:.2f} s, imports included)"
        )
        for line in render_tree(evaluation):
            print(f"   {line}")
        print("   outputs:")
        for key, output in evaluation.outputs.items():
            shown = "[secret]" if output.secret else _short(output.value)
            print(f"     {key}: {shown}")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
