"""Self-contained HTML audit reports: a run, a comparison of runs, or an ablation (the scoreboard).

One file with everything inline (CSS, base64 PNGs), to be handed on like LeakPro's PDF audit report: what was
attacked and with what (every model's sha256 and, for shipped ones, the command that trained it and its
accuracy), the final images beside E's verdict on each, every metric with its n and 95% CI
(``mia_app.evaluation.readout``), and the resolved config.

Private reference images are included only when asked (``references=True``): a report leaves the machine, and the
private faces are what the attack is trying to recover.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from datetime import datetime, timezone
from pathlib import Path

from PIL import Image

from mia_app.evaluation.readout import Reading, config_diff, readings
from mia_app.report.sources import model_provenance, private_references
from mia_app.run_folder import RunFolder

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1200px;margin:24px auto;padding:0 16px;
     color:#1f2328;line-height:1.45}
h1{font-size:1.6em;margin-bottom:0}h2{border-bottom:1px solid #d0d7de;padding-bottom:4px;margin-top:32px}
.sub{color:#57606a;margin-top:4px}
table{border-collapse:collapse;margin:8px 0;font-size:0.92em}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}
img.face{image-rendering:pixelated;width:96px;height:96px;border:1px solid #d0d7de}
img.ref{border:2px dashed #8c959f}
.faces{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid #d0d7de;border-radius:6px;padding:8px;max-width:330px;font-size:0.9em}
.ok{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:600}
pre{background:#f6f8fa;padding:8px;overflow-x:auto;font-size:0.85em}
.note{color:#57606a;font-size:0.9em}
"""


def _esc(x: object) -> str:
    return html.escape(str(x))


def png_data_uri(image: Image.Image | str | Path, scale: int = 1) -> str:
    """An image as a ``data:image/png;base64,...`` URI (nearest-neighbour upscaled by ``scale``)."""
    img = Image.open(image) if isinstance(image, (str, Path)) else image
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _img(src: str | Path | Image.Image, alt: str, ref: bool = False) -> str:
    return f'<img class="face{" ref" if ref else ""}" alt="{_esc(alt)}" title="{_esc(alt)}" src="{png_data_uri(src)}">'


def _table(headers: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _page(title: str, body: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_esc(title)}</title>"
            f"<style>{CSS}</style></head><body>{body}"
            f"<p class='note'>Written by mia_app on {stamp}. Success is judged by E (an evaluation classifier "
            "T never saw), the dlib judge and the KNN distance, never by T or by a loss.</p></body></html>")


def _readings_table(rows: list[Reading]) -> str:
    return _table(["metric", "value [95% CI]", "n", "note"], [list(r.as_row().values()) for r in rows])


def _provenance_table(run: Path) -> str:
    rows = [[p["role"], p["path"], p["sha256"][:16] + "…" if p["sha256"] else "", p["accuracy"], p["trained_by"]]
            for p in model_provenance(run)]
    return _table(["model", "file", "sha256", "private-test acc", "trained by"], rows)


def verdict_cards(run: Path, refs: dict[int, list[Image.Image]] | None) -> str:
    folder = RunFolder(run)
    verdicts = {(v["class"], v["rank"]): v for v in folder.per_image()}
    cards = []
    for cls, rank, path in folder.final_entries():
        v = verdicts.get((cls, rank))
        lines = [f"<b>class {cls}</b> · rank {rank}"]
        if v is not None:
            ok = v["E_recognises"]
            lines.append(f"<span class='{'ok' if ok else 'bad'}'>{'✔ E recognises' if ok else '✘ E does not recognise'}"
                         f" class {cls}</span>")
            lines.append("E top-5: " + ", ".join(f"{k} ({p:.0%})" for k, p in v["E_top5"]))
            if v.get("dlib_dist") is not None:
                lines.append(f"dlib distance {v['dlib_dist']:.3f}" + (" · nearest is this class" if v["dlib_top1"]
                                                                      else " · nearest is another class"))
        faces = _img(path, f"class {cls} rank {rank}")
        if refs is not None:
            faces += "".join(_img(r, f"private reference of class {cls}", ref=True) for r in refs.get(cls, [])[:2])
        cards.append(f"<div class='card'>{faces}<br>{'<br>'.join(lines)}</div>")
    if not cards:
        return "<p>No final images in this run folder.</p>"
    legend = "<p class='note'>Each card: the reconstruction" + (
        ", then private references of the class (dashed)" if refs is not None else "")
    if verdicts:
        legend += "; E's verdict, E's top-5 classes with probabilities, the dlib judge's distance to the nearest " \
                  "private image of the class.</p>"
    elif (run / "metrics.json").is_file():
        legend += ". Per-image verdicts need <code>per_image.json</code>: evaluate the run again (runs evaluated " \
                  "before it existed lack it).</p>"
    else:
        legend += ".</p>"
    return legend + f"<div class='faces'>{''.join(cards)}</div>"


def verdict_headline(run: str | Path) -> str:
    """One line a user reads first when a run ends: in how many final images E recognises the target (with
    Wilson's CI), and the dlib judge's top-1 against its chance level; green when E recognises most."""
    from mia_app.evaluation.metrics import wilson_interval

    run = Path(run)
    records = RunFolder(run).per_image()
    if not records:
        return ""
    k, n = sum(r["E_recognises"] for r in records), len(records)
    lo, hi = wilson_interval(k, n)
    ok = k / n >= 0.5
    parts = [f"<span class='{'ok' if ok else 'bad'}'>{'✔' if ok else '✘'} E recognises the target in {k} of {n} "
             f"final images ({k / n:.0%}, 95% CI {lo:.0%}–{hi:.0%})</span>"]
    judged = [r for r in records if r.get("dlib_top1") is not None]
    if judged:
        chance = {x.key: x.note for x in readings(run)}.get("judge_top1", "")
        top1 = sum(r["dlib_top1"] for r in judged)
        parts.append(f"dlib judge: the nearest private face is of the target's class in {top1} of {len(judged)} "
                     f"final images ({chance})")
    floor = RunFolder(run / "floor").per_image() if (run / "floor").is_dir() else []
    if floor:
        k0, n0 = sum(r["E_recognises"] for r in floor), len(floor)
        lo0, hi0 = wilson_interval(k0, n0)
        parts.append(f"No attack (the public images T ranks highest, same identities): E recognises the target in "
                     f"{k0} of {n0} ({k0 / n0:.0%}, 95% CI {lo0:.0%}–{hi0:.0%}). The attack is worth running "
                     "only where it beats this.")
    parts.append("Success is E's and the judge's verdict, never T's confidence.")
    return "<p>" + "<br>".join(parts) + "</p>"


def run_report(run: str | Path, references: bool = False) -> str:
    """The HTML of one run folder (an attack or a peer run, evaluated or not)."""
    run = Path(run)
    cfg = RunFolder(run).config()
    method = RunFolder(run).method()
    refs = private_references(run) if references else None
    evaluated = (run / "metrics.json").is_file()
    body = [f"<h1>Model inversion audit: {_esc(run_title(run))}</h1>",
            f"<p class='sub'>{_esc(method)} · benchmark {_esc((cfg.get('data') or {}).get('kind', 'synthid'))} · "
            f"target {_esc(cfg.get('target', '?'))} · seed {_esc(cfg.get('seed', '?'))}</p>"]
    if not evaluated:
        body.append("<p class='bad'>Not evaluated with E: run <code>python -m mia_app evaluate --run "
                    f"{_esc(run)}</code> for the evidence.</p>")
    body += ["<h2>Results</h2>", verdict_headline(run), _readings_table(readings(run)),
             "<h2>Reconstructions</h2>", verdict_cards(run, refs),
             "<h2>Models</h2>", _provenance_table(run),
             "<h2>Config</h2>", f"<pre>{_esc(json.dumps(cfg, indent=2, default=str))}</pre>"]
    return _page(f"mia_app report: {run_title(run)}", "".join(body))


def comparison_report(runs: list[str | Path], references: bool = False) -> str:
    """Two or more runs side by side: readings per run, the config diff, each run's images."""
    paths = [Path(r) for r in runs]
    if len(paths) < 2:
        raise ValueError("a comparison needs at least 2 runs")
    names = short_names(paths)
    per_run = {n: {r.label: r for r in readings(p)} for n, p in zip(names, paths, strict=True)}
    labels = list(dict.fromkeys(label for rs in per_run.values() for label in rs))
    rows = [[label, *[per_run[n][label].text() if label in per_run[n] else "" for n in names]] for label in labels]
    ns = {label: next((rs[label].n for rs in per_run.values() if label in rs), "") for label in labels}
    rows = [r + [ns[r[0]]] for r in rows]
    diff = config_diff({n: RunFolder(p).config() for n, p in zip(names, paths, strict=True)})
    body = [f"<h1>Model inversion audit: comparison of {len(paths)} runs</h1>",
            "<p class='sub'>" + " · ".join(f"{_esc(n)}: {_esc(RunFolder(p).method())}"
                                           for n, p in zip(names, paths, strict=True)) + "</p>",
            "<h2>Results</h2>",
            "<p class='note'>Each cell: value [95% CI] (E acc@k: Wilson's interval over images; the distances and "
            "dlib top-1: a bootstrap over identities).</p>", _table(["metric", *names, "n"], rows),
            "<p class='note'>CIs are per run; for a difference between runs on the same identities use the "
            "ablation's paired bootstrap (<code>python -m mia_app ablate</code>).</p>",
            "<h2>What differs in the configs</h2>",
            _table(["setting", *names], [[d["setting"], *[json.dumps(d[n], default=str) for n in names]]
                                         for d in diff]) if diff else "<p>The configs are identical.</p>"]
    refs = private_references(paths[0]) if references else None
    for n, p in zip(names, paths, strict=True):
        body += [f"<h2>{_esc(n)}</h2>", verdict_cards(p, refs), _provenance_table(p)]
    return _page("mia_app comparison", "".join(body))


def run_title(run: Path) -> str:
    """The folder's name, with its parent's when the name alone says little (an ablation's ``seed0``)."""
    return f"{run.parent.name}/{run.name}" if re.fullmatch(r"seed\d+", run.name) else run.name


def short_names(paths: list[Path]) -> list[str]:
    """The shortest trailing parts of the paths that tell them apart (``ppa/seed0`` beside ``baseline/seed0``)."""
    paths = [p.resolve() for p in paths]
    if len(set(paths)) != len(paths):
        raise ValueError("the same run is listed twice")
    for depth in range(1, max(len(p.parts) for p in paths) + 1):
        names = ["/".join(p.parts[-depth:]) for p in paths]
        if len(set(names)) == len(names):
            return names
    return [str(p) for p in paths]


def ablation_report(folder: str | Path) -> str:
    """An ablation's (or the scoreboard's) tables and figures, from the files ``ablate`` wrote."""
    from markdown_it import MarkdownIt

    folder = Path(folder)
    tables = sorted(folder.glob("*.md")) + sorted(folder.glob("*/table.md"))
    if not tables:
        raise FileNotFoundError(f"{folder} has no table.md: run `python -m mia_app ablate --config ...` first")
    md = MarkdownIt("commonmark").enable("table")
    body = [f"<h1>Model inversion audit: ablation {_esc(folder.name)}</h1>"]
    for t in tables:
        body.append(f"<h2>{_esc(t.relative_to(folder))}</h2>" + md.render(t.read_text()))
        for png in sorted(t.parent.glob("*.png")) if t.name == "table.md" or t.parent == folder else []:
            body.append(f"<p><img alt='{_esc(png.name)}' style='max-width:100%' src='{png_data_uri(png)}'></p>")
    return _page(f"mia_app ablation: {folder.name}", "".join(body))


def write_report(html_text: str, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html_text, encoding="utf-8")
    return out
