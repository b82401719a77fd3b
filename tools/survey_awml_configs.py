"""What pytest-awml does with each of AWML's own configs: read, or refused and why (the issue #27 survey).

    python tools/survey_awml_configs.py --awml-root /path/to/AWML [--out survey.md]

Walks ``projects/*/configs/**.py`` of an AWML checkout. A training config of a project a spec covers
(CenterPoint and ConvNeXt_PC → ``centerpoint``, YOLOX* → ``yolox``, CalibrationStatusClassification →
``calibration``, FRNet → ``frnet``, MobileNetv2 → ``mobilenetv2-car``/``-pedestrian``) goes through that spec's
``configure`` exactly as ``--awml-config`` does; a deploy config
(``configs/deploy/``, and the deployment framework's ``deployment/projects/*/config/*.py``) through
``--awml-deploy-config``'s reader and, where a spec covers its project, onto that spec. Anything else goes through
the bounded reader alone. Prints one Markdown row per file; exits 0 whatever it finds (a survey, not a test).
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from pathlib import Path

from pytest_awml import deploy_apply, deploy_config
from pytest_awml.config_reader import read_config
from pytest_awml.errors import AwmlError
from pytest_awml.spec_loader import load

LOG = logging.getLogger("survey")
SPEC_OF_PROJECT = {"CenterPoint": "centerpoint", "ConvNeXt_PC": "centerpoint", "YOLOX": "yolox", "YOLOX_opt": "yolox",
                   "YOLOX_opt_elan": "yolox", "CalibrationStatusClassification": "calibration", "FRNet": "frnet",
                   "MobileNetv2": "mobilenetv2-car"}


def _spec_for(project: str, rel: str) -> str | None:
    """The spec that covers a file of ``project`` (the traffic-light classifier's pedestrian files: its pedestrian spec)."""
    name = SPEC_OF_PROJECT.get(project)
    if name == "mobilenetv2-car" and "ped" in rel.rsplit("/", 1)[-1]:
        return "mobilenetv2-pedestrian"
    return name


def _first_line(error: Exception) -> str:
    return " ".join(str(error).split())[:220]


def survey(root: Path) -> list[tuple[str, str, str, str]]:
    """(file, what it is, spec tried, outcome) for every config under ``root``."""
    rows = []
    files = sorted(root.glob("projects/*/configs/**/*.py")) + sorted(root.glob("deployment/projects/*/config/*.py"))
    for path in files:
        rel = path.relative_to(root).as_posix()
        if path.name == "__init__.py":
            continue
        project = rel.split("/")[2] if rel.startswith("deployment/") else rel.split("/")[1]
        is_deploy = "/deploy/" in rel or rel.startswith("deployment/")
        spec_name = _spec_for(project, rel)
        if rel.startswith("deployment/"):
            spec_name = {"centerpoint": "centerpoint", "yolox": "yolox", "calibration": "calibration"}.get(project)
        kind = "deploy" if is_deploy else "training"
        try:
            if is_deploy:
                deploy = deploy_config.read(path)
                if spec_name is None:
                    rows.append((rel, kind, "-", f"read ({len(deploy.fields)} fields); no spec covers {project}"))
                    continue
                deploy_apply.apply(load(spec_name)[0], deploy)
                rows.append((rel, kind, spec_name, f"read and applied ({len(deploy.fields)} fields)"))
            elif spec_name is None:
                read_config(path)
                rows.append((rel, kind, "-", f"reader: read; no spec covers {project}"))
            else:
                spec = load(spec_name)[0]
                assert spec.configure is not None
                rebuilt = spec.configure(path)
                facts = {f.name: f.value for f in rebuilt.facts}
                shown = {k: facts[k] for k in ("point_features", "past_sweeps", "input_size", "in_channels") if k in facts}
                rows.append((rel, kind, spec_name, f"read {shown}" if shown else "read"))
        except AwmlError as error:  # what --awml-config / --awml-deploy-config would print (exit 4)
            rows.append((rel, kind, spec_name or "-", f"refused: {_first_line(error)}"))
        except Exception as error:  # noqa: BLE001 -- --awml-config turns a reader's other errors into a SpecError too
            rows.append((rel, kind, spec_name or "-", f"refused: {type(error).__name__}: {_first_line(error)}"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--awml-root", type=Path, required=True)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = survey(args.awml_root)
    lines = ["| file | kind | spec | outcome |", "| --- | --- | --- | --- |"]
    lines += [f"| `{f}` | {k} | {s} | {o.replace('|', '/')} |" for f, k, s, o in rows]
    tally = Counter((k, o.split(" ")[0].rstrip(":")) for _, k, _, o in rows)
    lines.append("")
    lines.append("; ".join(f"{kind} {outcome}: {n}" for (kind, outcome), n in sorted(tally.items())))
    text = "\n".join(lines)
    if args.out:
        args.out.write_text(text + "\n")
    LOG.info("%s", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
