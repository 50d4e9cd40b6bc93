"""The recorded recipe: start labels round-trip; the report tables state the recipe."""

from __future__ import annotations

import json

from brittle.train.recipe import (
    RECIPE,
    compare_recipe_html,
    recipe_record,
    recipe_rows,
    split_start,
    start_label,
)
from brittle.train.sft import FinetuneConfig


def test_start_label_round_trips():
    assert split_start(start_label("embedded:smollm2-135m", "/c/align/adapter")) == (
        "embedded:smollm2-135m", "/c/align/adapter")
    assert split_start(start_label("org/model", None)) == ("org/model", None)


def _write_run(d, name, steps, lr=1e-4):
    run = d / name
    run.mkdir(parents=True)
    fcfg = FinetuneConfig(preset="lora-attack", lr=lr)
    (run / RECIPE).write_text(json.dumps(recipe_record(fcfg, model="m", merged_adapter="/a",
                                                       demonstrations={"data": {"prompt_set": name}})))
    (run / "cells.jsonl").write_text(json.dumps({"key": "data/25/0", "kind": "data", "n": 25, "seed": 0,
                                                 "steps": steps, "trainable_params": 10,
                                                 "total_params": 1000}) + "\n")


def test_recipe_rows_state_method_rank_lr_epochs_steps_params_and_weights():
    rec = recipe_record(FinetuneConfig(preset="lora-attack"), model="m", merged_adapter="/a", bf16=True)
    rows = {r["field"]: r["value"] for r in recipe_rows(rec, [{"key": "harmful/10/0", "n": 10, "steps": 5,
                                                               "trainable_params": 10, "total_params": 1000}])}
    assert rows["adapter rank r"] == "8" and rows["adapter alpha"] == "16" and rows["adapter dropout"] == "0.0"
    assert rows["learning rate"] == "0.0001" and rows["epochs"] == "5.0" and rows["batch size"] == "10"
    assert rows["optimiser steps (per cell)"] == "harmful/10/0: 5"
    assert rows["trainable parameters"] == "10 of 1,000 (1.00%)"
    assert "merged" in rows["trained from"] and rows["precision"].startswith("bf16 autocast")


def test_compare_recipe_one_table_and_a_warning_when_recipes_differ(tmp_path):
    _write_run(tmp_path / "same", "top-repr", 13)
    _write_run(tmp_path / "same", "random", 13)
    html = compare_recipe_html(tmp_path / "same")
    assert "top-repr (seed 0): 13" in html and "random (seed 0): 13" in html and "not all" not in html
    _write_run(tmp_path / "diff", "top-repr", 13)
    _write_run(tmp_path / "diff", "random", 13, lr=5e-5)
    assert "not all fine-tuned with the same recipe" in compare_recipe_html(tmp_path / "diff")
    assert compare_recipe_html(tmp_path / "nothing") == ""
