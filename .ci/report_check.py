"""CI: check a report.json (status ok, TensorFlow version, engine) and, with --same-schema,
that it has exactly the keys of another report (values aside: the two engines' reports must be
one schema). Exit 1 with the differences otherwise. Standard library only (Python 3.7+)."""

import argparse
import glob
import json
import os
import sys

OPTIONAL = ("environment.gpu", "environment.npu")


def keys(value, prefix=""):
    if isinstance(value, dict):
        out = set()
        for k, v in value.items():
            out.add(prefix + k)
            out |= keys(v, prefix + k + ".")
        return out
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return keys(value[0], prefix + "[].")
    return set()


def load(folder):
    (path,) = glob.glob(os.path.join(folder, "*", "report.json"))
    with open(path, encoding="utf-8") as fh:
        return path, json.load(fh)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out", help="the --out folder of one bench run")
    parser.add_argument("--tensorflow", required=True)
    parser.add_argument("--engine", required=True)
    parser.add_argument("--same-schema", help="the --out folder of another run")
    args = parser.parse_args()
    path, report = load(args.out)
    problems = []
    if report["status"] != "ok":
        problems.append(f"status {report['status']}: "
                        f"{[r.get('error') for r in report['results']]}")
    if report["environment"]["tensorflow"] != args.tensorflow:
        problems.append(f"tensorflow {report['environment']['tensorflow']}")
    engines = sorted({r.get("engine") for r in report["results"]}, key=str)
    if engines != [args.engine]:
        problems.append(f"engines {engines}")
    if not all(r.get("evals") for r in report["results"]):
        problems.append("a result without an evaluation")
    if args.same_schema:
        other_path, other = load(args.same_schema)
        # the machine's optional sections (a gpu or npu one where the TF build or the host
        # has them) are facts of the environment, not of the report's schema
        mine, theirs = ({k for k in keys(r) if not k.startswith(OPTIONAL)}
                        for r in (report, other))
        if mine != theirs:
            problems.append(f"schema differs from {other_path}: only here "
                            f"{sorted(mine - theirs)}, only there {sorted(theirs - mine)}")
    for problem in problems:
        print(f"{path}: {problem}")
    if problems:
        sys.exit(1)
    same = f", same schema as {args.same_schema}" if args.same_schema else ""
    print(f"{path}: ok, TensorFlow {args.tensorflow}, {args.engine} engine, "
          f"{len(report['results'])} result(s){same}")


if __name__ == "__main__":
    main()
