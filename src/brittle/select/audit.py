"""`brittle audit FILE`: the defensive use of anchoring scores.

Score every row of a user's fine-tuning file against harmful/safe anchors under the model
they will fine-tune, and write into the run directory:

- ``audit.json``: risk score, rank and response formats per row, the rows dropped;
- ``filtered.jsonl``: the file without the top-risk rows (original order kept);
- ``audit.html``: a standalone page (riskiest rows escaped and truncated, format make-up of
  the risky rows vs the whole file, score histogram, what the score means and its limits);
- with ``verify``: fine-tune on the original and on the filtered file, evaluate both, and
  show the safety difference (``verify.json`` + a section of the page).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from brittle.config import StageConfig
from brittle.data.schema import Example
from brittle.errors import BrittleError
from brittle.evaluate.suites import DEFAULT_HARMFUL_SUITE, primary_harmful_suite
from brittle.fingerprint import file_sha256
from brittle.report.html import CSS, Section, esc, table, truncate
from brittle.select.compute import METHODS, ScoreOptions, make_config
from brittle.select.selection import format_makeup, formats_of, top_k
from brittle.store import read_json, write_json

log = logging.getLogger(__name__)

EXPLANATION = """
<p><b>What the risk score means.</b> For every row we take the gradient of the training loss
on the row's response under the model you will fine-tune (method <code>{method}</code>) and
compare it with the gradients of a small set of <i>anchor</i> examples: harmful requests
answered compliantly, and the same requests answered with two styles of refusal. A high score
means that a training step on this row moves the model in nearly the same direction as
training on harmful compliance, and away from refusing (He, Xia &amp; Henderson, COLM 2024,
“What's in your ‘safe’ data?”). With <code>repr</code> it is the similarity of the model's
final hidden state to harmful anchors; with <code>outlier</code> it is the anchor-free
length-normalised self-influence of Guan et al. (2025).</p>
<p><b>Limits.</b> The score is a <i>relative ranking</i> inside this file, not a probability
and not a content filter: a high-risk row is usually perfectly benign text (lists,
short imperative answers …) whose gradient happens to resemble harmful compliance; a
low score does not certify that a row is safe. It depends on the model, the anchors (a
few dozen examples) and the truncation; rankings from different models are not comparable.
Dropping the top rows reduced safety loss in the paper's setting; whether it does for your
model and data is what <code>--verify</code> measures.</p>
"""


class AuditConfig(StageConfig):
    run_dir: Path = Field(Path("runs/audit"), description="Directory for audit.json, filtered.jsonl and audit.html.")
    file: Path = Field(..., description="The fine-tuning file to audit (JSONL/JSON/CSV/Parquet; Alpaca, messages or ShareGPT rows).")
    model: str = Field("embedded:smollm2-135m", description="Model spec of the model that will be fine-tuned.")
    adapter: str | None = Field(None, description="Adapter directory applied (merged) on top of the model.")
    method: str = Field("exact-anchor", description=f"Scoring method: {', '.join(METHODS)}.")
    drop_top: float = Field(0.1, ge=0.0, le=1.0, description="Drop this share of the riskiest rows (ignored when threshold is set).")
    threshold: float | None = Field(None, description="Drop rows with risk score >= this value instead of a share.")
    verify: bool = Field(False, description="Fine-tune on the original and on the filtered file and compare their safety (slow).")
    verify_preset: str | None = Field("lora-attack", description="Fine-tuning preset for --verify (brittle.train presets; the attack sweep default).")
    eval_limit: int | None = Field(50, ge=1, description="Harmful prompts evaluated per model in --verify.")
    anchor_source: str = Field("harmful-pairs", description="Harmful anchors: 'harmful-pairs' or 'attack'.")
    anchor_category: str | None = Field(None, description="Anchor on one harm category only.")
    n_anchor: int = Field(10, ge=1, description="Anchor examples per set for gradient methods.")
    n_anchor_repr: int = Field(100, ge=1, description="Harmful anchor examples for repr.")
    anchor_response_tokens: int | None = Field(10, description="Anchor gradients on the first N response tokens.")
    batch_size: int = Field(8, ge=1, description="Feature batch size.")
    max_length: int | None = Field(512, description="Truncate rows to N tokens.")
    max_shown: int = Field(20, ge=1, description="Riskiest rows shown in audit.html.")
    device: str = Field("auto", description="cpu | cuda | auto")
    seed: int = Field(0, description="Seed for anchors and --verify.")

    def options(self) -> ScoreOptions:
        return ScoreOptions(batch_size=self.batch_size, max_length=self.max_length,
                            anchor_response_tokens=self.anchor_response_tokens, seed=self.seed)


def read_rows(path: Path) -> list[Example]:
    """Rows of the user's file; malformed rows raise DataError ``path:line: reason``."""
    from brittle.data.io import read_examples  # names a missing/odd path: path:0: reason

    rows = read_examples(path)
    if not rows:
        raise BrittleError(f"{path}: no rows")
    return rows


def drop_indices(scores: np.ndarray, *, drop_top: float, threshold: float | None) -> tuple[list[int], float]:
    """(indices to drop, cut-off score): ⌈drop_top·N⌉ riskiest rows (NaN never dropped) or
    all rows with score >= threshold."""
    valid = ~np.isnan(scores)
    if threshold is not None:
        idx = [int(i) for i in top_k(scores, int(valid.sum())) if scores[i] >= threshold]
        return idx, float(threshold)
    n_valid = int(valid.sum())
    n_drop = min(math.ceil(drop_top * n_valid - 1e-9), n_valid)
    idx = top_k(scores, n_drop)
    cut = float(scores[idx[-1]]) if idx else math.nan
    return idx, cut


def run_audit(cfg: AuditConfig, *, model: Any = None, tokenizer: Any = None,
              anchors: dict[str, list[Example]] | None = None) -> dict[str, Any]:
    """Score, rank and filter a fine-tuning file; write audit.json / filtered.jsonl / audit.html."""
    from brittle.data.io import write_jsonl
    from brittle.select.anchors import build_anchor_sets
    from brittle.select.run import attack_kwargs, score_pool

    if cfg.method not in METHODS:
        raise BrittleError(f"unknown method {cfg.method!r}; choose from {list(METHODS)}")
    run_dir = Path(cfg.run_dir)
    cfg.echo("audit_config")
    rows = read_rows(Path(cfg.file))
    scorable = [i for i, e in enumerate(rows) if e.response]
    if not scorable:
        raise BrittleError(f"{cfg.file}: no row has a response to train on")
    if anchors is None and cfg.method != "outlier":
        anchors = build_anchor_sets(max(cfg.n_anchor, cfg.n_anchor_repr), source=cfg.anchor_source,
                                    category=cfg.anchor_category, seed=cfg.seed,
                                    attack_kwargs=attack_kwargs(cfg.model))
    res = score_pool(
        [cfg.method], [rows[i] for i in scorable], anchors or {}, model_spec=cfg.model,
        adapter=cfg.adapter, opts=cfg.options(), n_grad=cfg.n_anchor, n_repr=cfg.n_anchor_repr,
        cache_dir=run_dir / "scores", device=cfg.device,
        model_tok=(model, tokenizer) if model is not None else None,
    )[cfg.method]
    scores = np.full(len(rows), np.nan)
    scores[scorable] = res["score"]
    dropped, cut = drop_indices(scores, drop_top=cfg.drop_top, threshold=cfg.threshold)
    dropped_set = set(dropped)
    order = top_k(scores, int((~np.isnan(scores)).sum()))
    rank = {i: r + 1 for r, i in enumerate(order)}
    fmts = formats_of(rows)
    n_valid = len(order)
    records = [
        {"row": i + 1, "id": e.id, "score": None if math.isnan(scores[i]) else float(scores[i]),
         "rank": rank.get(i), "percentile": (None if i not in rank else 1 - (rank[i] - 1) / n_valid),
         "formats": sorted(fmts[i]), "dropped": i in dropped_set}
        for i, e in enumerate(rows)
    ]
    kept = [e for i, e in enumerate(rows) if i not in dropped_set]
    risky = [rows[i] for i in dropped]
    filtered = write_jsonl(kept, run_dir / "filtered.jsonl")
    result: dict[str, Any] = {
        "file": str(cfg.file), "sha256": file_sha256(Path(cfg.file)), "model": cfg.model,
        "adapter": cfg.adapter, "method": cfg.method, "n_rows": len(rows), "n_scored": n_valid,
        "n_dropped": len(dropped), "drop_top": cfg.drop_top, "threshold": cfg.threshold,
        "cut_score": None if math.isnan(cut) else cut, "filtered_file": str(filtered),
        "makeup": {"file": format_makeup(rows), "dropped": format_makeup(risky) if risky else {"n": 0}},
        "rows": records,
    }
    write_json(run_dir / "audit.json", _clean(result))
    if cfg.verify:
        result["verify"] = run_verify(cfg, rows, kept)
        write_json(run_dir / "audit.json", _clean(result))
    page = write_audit_html(run_dir, result, rows, max_shown=cfg.max_shown)
    result["html"] = str(page)
    log.info("audit: %d rows, %d dropped -> %s", len(rows), len(dropped), run_dir)
    return result


def _clean(x: Any) -> Any:
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x


# ---- --verify ---------------------------------------------------------------------------------


def run_verify(cfg: AuditConfig, original: Sequence[Example], filtered: Sequence[Example]) -> dict[str, Any]:
    """Fine-tune (same config and seed) on the original and the filtered rows, evaluate both on
    the harmful suite, and return {label: {"adapter", "asr": [p, lo, hi]}, "delta_asr"}."""
    from brittle.evaluate.run import EvalConfig, run_eval
    from brittle.train.sft import FinetuneConfig, train_model

    out: dict[str, Any] = {}
    for label, exs in (("original", original), ("filtered", filtered)):
        d = Path(cfg.run_dir) / "verify" / label
        fcfg = make_config(FinetuneConfig, run_dir=d / "train", model=cfg.model, adapter=cfg.adapter,
                           base_adapter=cfg.adapter, preset=cfg.verify_preset, seed=cfg.seed)
        # the fresh adapter sits on the merged aligned weights: evaluate the trained model in-process
        res = train_model(fcfg, [e for e in exs if e.response])
        adapter = res.path
        ecfg = make_config(EvalConfig, run_dir=d / "eval", model=cfg.model, adapter=str(adapter),
                           suites=[DEFAULT_HARMFUL_SUITE], limit=cfg.eval_limit, seed=cfg.seed)
        metrics = run_eval(ecfg, model=res.model, tokenizer=res.tokenizer)
        del res
        out[label] = {"adapter": str(adapter), "n_train": len(exs), "asr": _asr(metrics)}
    a, b = out["original"]["asr"], out["filtered"]["asr"]
    out["delta_asr"] = (a[0] - b[0]) if a and b and a[0] is not None and b[0] is not None else None
    write_json(Path(cfg.run_dir) / "verify.json", out)
    return out


def _asr(metrics: dict[str, Any]) -> list[float] | None:
    suites = metrics.get("suites", {})
    suite = suites.get(primary_harmful_suite(list(suites)) or "", {})
    v = suite.get("asr")
    return [float(x) for x in v] if v is not None else None


# ---- audit.html -------------------------------------------------------------------------------


def write_audit_html(run_dir: Path, result: dict[str, Any], rows: Sequence[Example], *, max_shown: int = 20) -> Path:
    """Standalone page (inline CSS and images, every text escaped)."""
    from brittle.report.format import display_path
    from brittle.select.section import embed_png, histogram_plot, makeup_rows, pct

    recs = result["rows"]
    scored = [r for r in recs if r["score"] is not None]
    riskiest = sorted(scored, key=lambda r: r["rank"])[:max_shown]
    sections: list[Section] = []
    head = (
        f"<p>File <code>{esc(display_path(result['file'], run_dir))}</code> (sha256 <code>{esc(result['sha256'][:16])}…</code>): "
        f"{esc(result['n_rows'])} rows, {esc(result['n_scored'])} scored; model <code>{esc(result['model'])}</code>"
        + (f" + adapter <code>{esc(display_path(result['adapter'], run_dir))}</code>" if result.get("adapter") else "")
        + f"; method <code>{esc(result['method'])}</code>. Dropped {esc(result['n_dropped'])} rows "
        + (f"(score ≥ {esc(result['threshold'])})" if result.get("threshold") is not None
           else f"(top {esc(pct(result['drop_top']))})")
        + f"; filtered file: <code>{esc(Path(result['filtered_file']).name)}</code>.</p>"
    )
    sections.append(Section("Summary", head + EXPLANATION.format(method=esc(result["method"])), "summary"))
    png = histogram_plot([r["score"] for r in scored], run_dir / "plots" / "risk_hist.png",
                         cut=result.get("cut_score"), title="Risk score per row")
    mk = {"whole file": result["makeup"]["file"], "dropped rows": result["makeup"]["dropped"]}
    sections.append(Section("Scores and formats",
                            embed_png(png, "Risk scores of all rows; dashed line: drop threshold")
                            + table(makeup_rows(mk)), "formats"))
    trs = []
    for r in riskiest:
        e = rows[r["row"] - 1]
        trs.append({"rank": r["rank"], "row": r["row"], "score": r["score"], "dropped": "yes" if r["dropped"] else "",
                    "formats": ", ".join(r["formats"]), "prompt": truncate(e.prompt, 200),
                    "response": truncate(e.response or "", 300)})
    sections.append(Section(f"The {len(trs)} riskiest rows",
                            "<p>Text is escaped and truncated; full rows are in the file.</p>"
                            + table(trs, ["rank", "row", "score", "dropped", "formats", "prompt", "response"]),
                            "riskiest"))
    v = result.get("verify")
    if v:
        vr = [{"fine-tuned on": k, "rows": v[k]["n_train"],
               "ASR": pct(v[k]["asr"][0]) if v[k]["asr"] else "",
               "95% CI": f"{pct(v[k]['asr'][1])}–{pct(v[k]['asr'][2])}" if v[k]["asr"] else ""}
              for k in ("original", "filtered")]
        sections.append(Section("Verification: fine-tune on original vs filtered",
                                table(vr) + f"<p>ASR difference (original − filtered): {esc(pct(v.get('delta_asr')))}"
                                "; harmful prompts judged by refusal matching.</p>", "verify"))
    nav = "".join(f'<a href="#{esc(s.anchor)}">{esc(s.title)}</a>' for s in sections)
    body = "".join(f'<section id="{esc(s.anchor)}"><h2>{esc(s.title)}</h2>{s.body}</section>' for s in sections)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>brittle audit</title>"
            f"<style>{CSS}</style></head><body><h1>brittle audit — {esc(Path(result['file']).name)}</h1>"
            f"<nav>{nav}</nav>{body}</body></html>")
    out = run_dir / "audit.html"
    out.write_text(page, encoding="utf-8")
    return out


def load_audit(run_dir: str | Path) -> dict[str, Any]:
    return read_json(Path(run_dir) / "audit.json")
