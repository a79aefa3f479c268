"""Train an adapter with the AUTHORS' OWN training code (wassname/AntiPaSTO @ 85c09b7, extracted outside
this repo, see authors_env.py) on a local HF model directory, float32 on CPU, offline.

This driver re-does train_model()'s setup steps (antipasto/train/train_adapter.py) by calling their functions
in their order, bypassing only what needs CUDA, the hub or wandb:
  set_seed -> register_antipasto_peft -> [model/tokenizer load: ours, float32/CPU, their tokenizer settings]
  -> create_train_dataset (their persona data nbs/data/*.json) -> resolve_target_modules
  -> compute_simple_layer_selection (layers, wanda_svd_l1_trip directions, subspaces) -> setup_adapter
  -> translate_to_peft_model -> compute_loss_subspace_basis -> get_scale_adapter_fn
  -> DataLoaders (their collator/batch size; num_workers=0, no pin_memory) -> AdamW + OneCycleLR (theirs)
  -> their train_epoch() per epoch (with their validation / early-stopping logic) -> their save_adapter().
Skipped (logging / evaluation only, or hub data): validate_prompt_elicitation, log_example_outputs,
auto_flip_adapter_sign, evaluate_model (DailyDilemmas from the hub), wandb.
Config: TrainingConfig() defaults except model_name, seed, n_epochs, use_wandb=False, output_dir.

Usage (from /work/main):
  PYTHONPATH=/tmp/authors-site .venv/bin/python results/authors-code/train_authors.py \
      --model runs/planted-authors/planted --seed 0 --epochs 2 --out runs/planted-authors/authors-adapter
"""
import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import authors_env  # noqa: E402

authors_env.setup()

import cattrs  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorWithPadding  # noqa: E402
from loguru import logger  # noqa: E402

from antipasto.config import TrainingConfig  # noqa: E402
from antipasto.train import train_adapter as T  # noqa: E402
from antipasto.train.data import create_train_dataset  # noqa: E402
from antipasto.train.model_setup import DEFAULT_CHAT_TEMPLATE, compute_loss_subspace_basis, setup_adapter  # noqa: E402
from antipasto.peft_utils.antipasto_adapter import register_antipasto_peft  # noqa: E402
from antipasto.peft_utils.adapter_scaling import get_scale_adapter_fn  # noqa: E402
from antipasto.peft_utils.layer_selection import compute_simple_layer_selection, resolve_target_modules  # noqa: E402
from antipasto.peft_utils.load import save_adapter  # noqa: E402


def load_model_cpu(model_id):
    """Their load_model() minus device_map='cuda:0' and bf16/fp16: float32 on CPU. Tokenizer as theirs."""
    base_model = AutoModelForCausalLM.from_pretrained(model_id, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(model_id, padding_side="left")
    if tokenizer.pad_token is None:
        tokenizer.pad_token_id = 0
    tokenizer.padding_side = "left"
    if not tokenizer.chat_template:
        tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
    return base_model, tokenizer


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--no-val", action="store_true", help="skip their periodic validation (saves CPU time)")
    p.add_argument("--max-samples", type=int, default=None, help="smoke tests only (their default: 3000)")
    args = p.parse_args()

    t0 = time.time()
    times = {}
    save_folder = Path(args.out)
    save_folder.mkdir(parents=True, exist_ok=True)
    config = TrainingConfig(model_name=str(args.model), seed=args.seed, n_epochs=args.epochs, use_wandb=False,
                            output_dir=save_folder)
    if args.max_samples is not None:
        config.max_samples = config.init_n_samples = args.max_samples
    T.setup_logging(config, save_folder=save_folder)
    logger.add(str(save_folder / "train.log"), level="INFO")
    T.set_seed(config.seed)
    logger.info(f"config (non-defaults: model_name, seed, n_epochs, use_wandb, output_dir):\n{config}")

    register_antipasto_peft()
    base_model, tokenizer = load_model_cpu(config.model_name)
    train_honest, train_dataset_pt, val_honest, val_dataset_pt = create_train_dataset(
        config, tokenizer, max_size=config.max_samples)

    candidate_modules = resolve_target_modules(base_model, config.target_modules)
    top_k = config.loss_subspace_rank or 512
    sel = compute_simple_layer_selection(
        model=base_model, r=config.r, n_modules=config.n_modules, loss_layer_frac=config.loss_layer_frac,
        min_adapter_layer_frac=config.min_adapter_layer_frac, candidate_modules_filter=candidate_modules,
        dim_select_method=config.dim_select_method, loss_subspace=config.loss_subspace, top_k=top_k,
        tokenizer=tokenizer, dataset_pt=train_dataset_pt, n_samples=config.init_n_samples, bs=config.bs,
        seed=config.seed)
    layer_selection, precomputed_indices, subspaces = sel.layer_selection, sel.precomputed_indices, sel.subspaces
    indices_copy = {k: v.clone() for k, v in precomputed_indices.items()}
    model = setup_adapter(base_model, config, target_modules=layer_selection.adapter_regex,
                          precomputed_indices=precomputed_indices)
    layer_selection_peft = layer_selection.translate_to_peft_model(model)
    loss_layers = layer_selection_peft.loss_layer_names
    loss_layer_indices = layer_selection_peft.loss_layer_indices
    loss_subspace = compute_loss_subspace_basis(config=config, subspaces=subspaces, model=model,
                                                tokenizer=tokenizer, dataset_pt=train_dataset_pt)
    scale_adapter_fn = get_scale_adapter_fn(model)
    times["setup_s"] = time.time() - t0

    collator = DataCollatorWithPadding(tokenizer=tokenizer, padding="longest", max_length=64)
    train_dl = DataLoader(train_dataset_pt, shuffle=False, batch_size=config.bs, collate_fn=collator,
                          num_workers=0, drop_last=True)
    val_dl = DataLoader(val_dataset_pt, shuffle=False, batch_size=config.bs, collate_fn=collator,
                        num_workers=0, drop_last=True)
    total_steps = config.n_epochs * len(train_dl) // config.grad_accum_steps
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.wd)
    early_stop_enabled = config.early_stop_patience > 0 and config.coh and config.mono and config.focus_softness < 1.0
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=config.lr, total_steps=total_steps, pct_start=config.warmup_pct,
        final_div_factor=1.0 if early_stop_enabled else 1e5)
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info(f"Training: {config.n_epochs} epochs x {len(train_dl)} batches of {config.bs} rows "
                f"({config.bs // 2} pairs), grad_accum {config.grad_accum_steps}, {total_steps} optimiser steps, "
                f"{n_trainable} trainable params")

    infos, best_val_loss, patience_counter, flip_stats = [], [float("inf")], [0], {}
    t1 = time.time()
    stopped_at = None
    for epoch in range(config.n_epochs):
        should_stop = T.train_epoch(
            model=model, train_dataloader=train_dl, loss_layers=loss_layers, loss_layer_indices=loss_layer_indices,
            opt=opt, scheduler=scheduler, config=config, epoch=epoch, infos=infos, wandb_run=None,
            val_dataloader=None if args.no_val else val_dl, best_val_loss=best_val_loss,
            patience_counter=patience_counter, save_folder=save_folder, flip_stats=flip_stats,
            total_steps=total_steps, loss_subspace=loss_subspace, scale_adapter_fn=scale_adapter_fn)
        logger.info(f"epoch {epoch} done at {time.time() - t1:.0f} s")
        if should_stop:
            stopped_at = epoch
            logger.info(f"Training stopped early at epoch {epoch}")
            break
    times["train_s"] = time.time() - t1

    n_train_batches = sum(1 for i in infos if i.get("phase") == "train") // (2 * len(loss_layers))
    df_hist = T.process_infos(infos)
    df_hist.to_csv(save_folder / "train_history.csv", index=False)
    save_adapter(model, save_folder, config.dataset_name, model_id=config.model_name,
                 layer_selection=layer_selection, precomputed_indices=indices_copy)
    torch.save({"loss_subspace": loss_subspace.detach().cpu(), "indices": indices_copy},
               save_folder / "selection.pt")
    with open(save_folder / "training_config.json", "w") as f:
        json.dump(cattrs.unstructure(config), f, indent=2, default=str)
    last = df_hist.groupby("phase").last().filter(like="loss_") if "phase" in df_hist else None
    summary = {
        "model": str(args.model), "seed": config.seed, "data_seed": config.data_seed,
        "n_epochs": config.n_epochs, "bs_rows": config.bs, "pairs_per_batch": config.bs // 2,
        "grad_accum_steps": config.grad_accum_steps, "pairs_per_optimiser_step": config.bs // 2 * config.grad_accum_steps,
        "train_pairs": len(train_honest), "val_pairs": len(val_honest), "batches_per_epoch": len(train_dl),
        "train_batches_run": n_train_batches, "pair_examples": n_train_batches * (config.bs // 2),
        "optimiser_steps_planned": total_steps, "optimiser_steps_run": scheduler.last_epoch,
        "early_stopped_epoch": stopped_at, "validation": not args.no_val,
        "loss_layer_paths": loss_layers, "loss_layer_indices": loss_layer_indices,
        "loss_subspace": config.loss_subspace, "loss_subspace_shape": list(loss_subspace.shape),
        "adapter_modules": layer_selection.adapter_layer_names, "rank": config.r,
        "indices": {k: v.tolist() for k, v in indices_copy.items()},
        "trainable_params": n_trainable, "times_s": times, "total_wall_s": time.time() - t0,
        "final_losses": None if last is None else json.loads(last.to_json()),
    }
    (save_folder / "summary.json").write_text(json.dumps(summary, indent=1))
    logger.info(f"done: {summary['pair_examples']} pair-examples, {summary['optimiser_steps_run']} optimiser steps, "
                f"train {times['train_s']:.0f} s, total {summary['total_wall_s']:.0f} s -> {save_folder}")


if __name__ == "__main__":
    main()
