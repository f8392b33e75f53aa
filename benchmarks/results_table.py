"""Rebuild the results table in README.md from the JSON files in benchmarks/results/.

python benchmarks/results_table.py
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- results-table:start -->", "<!-- results-table:end -->"
HEADER = [
    "| benchmark | data | result | speed | machine | date |",
    "| --- | --- | --- | --- | --- | --- |",
]
DATA_NOTES = {
    "mnist": "binarized MNIST, 9k/1k subset (`mnist_10k.npz`)",
    "shapes": "binary shapes 20x20, 10k/2k",
}


def pixelcnn_quality_row(record: dict) -> str:
    epochs = record["epochs"]
    result = f"test {record['final_test_nats_per_dim']:.4f} nats/dim after {len(epochs)} epochs"
    if record.get("course_reference_nats_per_dim"):
        result += f" (course: {record['course_reference_nats_per_dim']} on 60k after 10)"
    speed = f"{record['median_train_images_per_second']:.0f} train images/s (median of epochs)"
    return row(record, "PixelCNN course net", DATA_NOTES[record["dataset"]], result, speed)


def row(record: dict, name: str, data: str, result: str, speed: str) -> str:
    machine = record["machine"]
    where = f"{machine['device']}, {machine['cpu_cores']} cores ({machine['cpu']})"
    return f"| {name} | {data} | {result} | {speed} | {where} | {record['date'][:10]} |"


def toy_quality_rows(record: dict) -> list[str]:
    rows = []
    for model in record["models"]:
        result = f"test {model['test_nats_per_dim']:.4f} nats/dim"
        if "entropy_nats_per_dim" in model:
            result += (
                f"; exact entropy {model['entropy_nats_per_dim']:.4f}, true pmf on the same"
                f" test points {model['true_distribution_test_nats_per_dim']:.4f}"
                f" ± {model['true_distribution_test_standard_error']:.4f}"
            )
        if model.get("course_reference_nats_per_dim"):
            result += f" (course: {model['course_reference_nats_per_dim']} on its own data)"
        speed = f"{model['epochs']} epochs (a quality benchmark, not timed alone)"
        data = TOY_DATA.get(model["config"].split("/")[1], model["config"].split("/")[1])
        rows.append(row(record, model["config"].split("/")[0], data, result, speed))
    return rows


TOY_DATA = {
    "course1": "1D course set 1 (N(0.2, 0.2), d=20)",
    "course2": "1D course set 2 (3 Gaussians, d=100)",
    "warmup": "1D warm-up (2 Gaussians, d=100)",
    "procedural2d": "2D built-in picture, 25x25",
    "procedural": "2D built-in picture, 25x25",
    "shapes": "binary shapes 20x20, 10k/2k",
}


def gated_pixelcnn_rows(record: dict) -> list[str]:
    """Training of each variant, then the queries and samplers of the query model."""
    rows = []
    code = record.get("genlab_code", {}).get("commit", "")[:7]
    for variant, result in record["variants"].items():
        epochs = len(result["epochs"])
        plural = "" if epochs == 1 else "s"
        text = f"test {result['final_test_bits_per_dim']:.3f} bits/dim after {epochs} epoch{plural}"
        text += f" (tutorial: {record['tutorial_reference_bits_per_dim']} on 60k after 150)"
        speed = f"{result['median_train_images_per_second']:.1f} train images/s"
        speed += f", {result['parameters']:,} parameters"
        speed += training_ratio(record, result)
        name = "Gated PixelCNN" if variant == "gated" else "Gated PixelCNN, plain variant"
        if code:
            name += f" (genlab {code})"
        rows.append(row(record, name, "8-bit MNIST, 9k/1k subset", text, speed))
    if "queries" in record:
        rows.extend(gated_query_rows(record))
    return rows


def training_ratio(record: dict, result: dict) -> str:
    """The images/s against the same variant in the ``_before`` file of this benchmark,
    where there is one."""
    before_path = ROOT / "benchmarks" / "results" / f"{record['benchmark']}_before.json"
    if record["benchmark"].endswith("_before") or not before_path.is_file():
        return ""
    before = json.loads(before_path.read_text())
    old = before["variants"].get(result["variant"])
    if old is None:
        return ""
    old_speed = old["median_train_images_per_second"]
    ratio = result["median_train_images_per_second"] / old_speed
    commit = before["genlab_code"]["commit"][:7]
    return f" (**{ratio:.2f}x** the {old_speed:.1f} images/s of genlab {commit})"


def gated_query_rows(record: dict) -> list[str]:
    queries = record["queries"]
    seconds = queries["seconds"]
    data = f"one 8-bit test digit, {queries['model']}"
    estimates = []
    for name, summary in queries["estimates"].items():
        text = (
            f"{name[0]}: p({summary['likeliest_value']}) = {summary['probability']:.3f}"
            f" ± {summary['standard_error']:.4f}"
        )
        if summary.get("effective_sample_size") is not None:
            text += f", {summary['effective_sample_size']:.0f} effective samples"
        estimates.append(text)
    result = f"{'; '.join(estimates)} ({queries['mc_samples']} samples each)"
    speed = (
        ", ".join(
            f"{name[0]} {seconds[name]:.2g} s" for name in seconds if not name.startswith("g_")
        )
        + g_query_text(seconds)
        + f" (f, g with {queries['completions']} images, g per sweep)"
    )
    rows = [row(record, "Gated PixelCNN queries a-g", data, result, speed)]
    for name, precise in queries.get("precise", {}).items():
        text = (
            f"{name[0]}: p({precise['likeliest_value']}) = {precise['probability']:.3f}"
            f" ± {precise['standard_error']:.4f} from {precise['samples']:,} samples"
        )
        if precise.get("effective_sample_size") is not None:
            text += f" ({precise['effective_sample_size']:.0f} effective)"
        speed = f"{precise['seconds']:.1f} s (one run)"
        rows.append(row(record, f"Gated PixelCNN query {name[0]}, precise", data, text, speed))
    samplers = queries["samplers"]
    same = "same images" if samplers["same_images"] else "DIFFERENT images"
    text = (
        f"batch {samplers['batch']}: {samplers['naive']:.1f} s naive, "
        f"{samplers['cached']:.2f} s cached, {same}"
    )
    speed = f"**{samplers['naive'] / samplers['cached']:.0f}x** speed-up (one run each)"
    where = f"8-bit 28x28, {queries['model']}"
    rows.append(row(record, "Gated PixelCNN samplers", where, text, speed))
    return rows


def g_query_text(queries: dict) -> str:
    """Query g per sweep: a Metropolis sweep, and the Gibbs sweep derived from one pixel
    update."""
    gibbs = queries["g_gibbs_one_sweep_derived"]
    return f", g {queries['g_top_given_bottom_one_sweep']:.2g} s (Gibbs: {gibbs:.2g} s)"


def kv_cache_rows(record: dict) -> list[str]:
    rows = []
    for result in record["results"]:
        text = (
            f"batch {result['batch']}: {result['uncached_seconds']:.1f} s without cache, "
            f"{result['cached_seconds']:.1f} s with it"
        )
        runs = f"median of {result['cached_runs']} cached, {result['uncached_runs']} uncached"
        speed = f"**{result['speedup']:.1f}x** speed-up (side by side; {runs})"
        rows.append(row(record, "iGPT sampling, KV cache", "784 tokens (28x28)", text, speed))
    return rows


SAMPLING_NAMES = {
    "sampling": ("PixelCNN sampling, cached", "binary 28x28, course network"),
    "gated_sampling": ("Gated PixelCNN sampling, cached", "8-bit 28x28, course network"),
}


def measured_part(record: dict, part: str) -> dict:
    """The record dated by when ``part`` was measured: speed.py re-runs parts one at a
    time and keeps the others, so the file's date is only that of its newest part."""
    measured = record.get(part, {}).get("measured_at", record["date"])
    return {**record, "date": measured}


def speed_rows(record: dict) -> list[str]:
    rows = []
    for part, (name, data) in SAMPLING_NAMES.items():
        for result in record.get(part, {}).get("results", []):
            text = (
                f"batch {result['batch']}: {result['naive_seconds']:.1f} s naive, "
                f"{result['cached_seconds']:.3f} s cached, same images"
            )
            runs = (
                f"median of {len(result['cached_runs'])} cached, {len(result['naive_runs'])} naive"
            )
            speed = (
                f"**{result['speedup']:.0f}x** speed-up (target {result['target_speedup']}x;"
                f" side by side; {runs})"
            )
            rows.append(row(measured_part(record, part), name, data, text, speed))
    return rows + throughput_rows(record) + ddp_rows(record)


THROUGHPUT_NAMES = {
    "pixelcnn": ("PixelCNN training step", "binary 28x28, course network"),
    "char_gpt": ("Character GPT training step", "64-character windows"),
}


def throughput_rows(record: dict) -> list[str]:
    part = record.get("throughput", {})
    rows = []
    for family, (name, data) in THROUGHPUT_NAMES.items():
        if family not in part:
            continue
        result = part[family]
        unit = result["unit"]
        text = (
            f"Lightning {result['lightning_per_second']:.0f} {unit}/s, plain loop "
            f"{result['plain_per_second']:.0f} {unit}/s (batch {result['batch_size']}, "
            f"{part['device']}, {part['precision']})"
        )
        speed = (
            f"**{result['ratio']:.2f}** Lightning / plain, median step times of the two "
            f"taking turns step by step, {part['rounds']} fits of {result['steps']} steps "
            f"(target 0.95; per fit {min(result['round_ratios']):.2f}-"
            f"{max(result['round_ratios']):.2f})"
        )
        rows.append(row(measured_part(record, "throughput"), name, data, text, speed))
    return rows


def ddp_rows(record: dict) -> list[str]:
    part = record.get("ddp")
    if not part:
        return []
    single, two = part["single_process"], part["two_processes"]
    text = (
        f"1 process {single['images_per_second']:.0f} images/s, 2 DDP processes "
        f"{two['images_per_second']:.0f} images/s (global batch {part['global_batch']}, "
        f"{part['threads']} threads)"
    )
    speed = (
        f"**{part['ratio']:.2f}** two / one (side by side; median of {part['rounds']} rounds "
        f"of {part['steps']} steps)"
    )
    return [
        row(
            measured_part(record, "ddp"),
            "PixelCNN under DDP, CPU",
            "binary 28x28, course network",
            text,
            speed,
        )
    ]


def char_gpt_row(record: dict) -> str:
    median = record["median"]
    config = record["config"]
    result = (
        f"validation loss {median['val_loss_nanogpt_positions']:.3f} nats/char over positions "
        f"with 1..{config['characters_of_context']} characters of context "
        f"(nanoGPT: about {record['nanogpt_reference_val_loss']}); "
        f"{median['val_nats_per_char_all_positions']:.3f} with the no-context position"
    )
    speed = (
        f"{config['steps']} steps in {median['train_seconds']:.0f} s, "
        f"{median['train_tokens_per_second']:.0f} tokens/s (median of {len(record['runs'])} runs)"
    )
    data = "Tiny Shakespeare, 90/10, 4 layers x 4 heads x 128, batch 12"
    return row(record, "Character GPT", data, result, speed)


def vq_multimodal_rows(record: dict) -> list[str]:
    data = "coloured MNIST (4 levels), 9k/1k subset (`mnist_10k.npz`)"
    vqvae, prior, multimodal = record["vqvae"], record["prior"], record["multimodal"]
    grounding = record["grounding"]
    tokens = (
        f"{vqvae['tokens']}; test reconstruction {vqvae['test_recon_nats_per_dim']:.3f} "
        f"nats/dim, {percent(vqvae['test_subpixels_right'])} of subpixels right; "
        f"{100 * vqvae['test_codes_used']:.0f}% of {vqvae['num_codes']} stroke codes in use, "
        f"perplexity {vqvae['test_codebook_perplexity']:.0f}"
    )
    real, rebuilt = grounding["judges_on_test_images"], grounding["judges_on_test_reconstructions"]
    prior_text = (
        f"test {prior['test_nats_per_token']:.3f} nats/token (course: "
        f"{prior['course_reference_nats_per_token']} with its own tokenizer on 60k, not "
        f"comparable); the digit judge reads "
        f"{percent(grounding['prior_samples']['confident_digit_rate'])} of 100 samples with "
        f"p >= 0.9 (test images {percent(real['confident_digit_rate'])}, their "
        f"reconstructions {percent(rebuilt['confident_digit_rate'])})"
    )
    drawn = grounding["caption_to_image"]
    sampled, greedy = grounding["image_to_caption_sampled"], grounding["image_to_caption_greedy"]
    multimodal_text = (
        f"test {multimodal['test_nats_per_token']:.3f} nats/token; caption to image: "
        f"{percent(drawn['digit'])} asked digit, {percent(drawn['all_three'])} digit and both "
        f"colours (judges on VQ reconstructions: {percent(rebuilt['digit'])}, "
        f"{percent(rebuilt['all_three'])}; on test images {percent(real['digit'])}); image to "
        f"caption: {percent(sampled['digit'])} true digit, {percent(sampled['all_three'])} all "
        f"three sampled, {percent(greedy['digit'])} and {percent(greedy['all_three'])} greedy"
    )
    return [
        row(record, "VQ-VAE tokenizer", data, tokens, epochs_and_seconds(vqvae)),
        row(record, "VQ token prior", data, prior_text, epochs_and_seconds(prior)),
        row(record, "Multimodal GPT", data, multimodal_text, epochs_and_seconds(multimodal)),
    ]


def percent(fraction: float) -> str:
    return f"{100 * fraction:.1f}%"


def epochs_and_seconds(stage: dict) -> str:
    return f"{stage['epochs']} epochs, {stage['train_seconds']:.0f} s of training"


def latent_rows(record: dict) -> list[str]:
    data = "4-bit MNIST, 9k/1k subset (`mnist_10k.npz`)"
    rows = []
    for vae in record["vae"]:
        result = (
            f"z = {vae['latent_dim']}: test negative ELBO "
            f"{vae['test_bits_per_dim']:.3f} bits/dim (reconstruction "
            f"{vae['test_recon_nats_per_dim']:.3f} + KL {vae['test_kl_nats_per_dim']:.3f} "
            f"nats/dim); importance-weighted (k = {vae['iw_samples']}) "
            f"{vae['test_iw_bits_per_dim']:.3f} bits/dim"
        )
        rows.append(row(record, "VAE", data, result, epochs_and_seconds(vae)))
    for aae in record["aae"]:
        result = (
            f"{aae['encoder']} encoder, z = {aae['latent_dim']}, lambda "
            f"{aae['reconstruction_weight']}: test reconstruction "
            f"{aae['test_recon_nats_per_dim']:.3f} nats/dim; MMD^2 of test codes to the prior "
            f"{aae['test_codes_vs_prior_mmd2']:.4f} (prior vs prior "
            f"{aae['prior_vs_prior_mmd2']:.4f})"
        )
        rows.append(row(record, "Adversarial autoencoder", data, result, epochs_and_seconds(aae)))
    return rows


def diffusion_rows(record: dict) -> list[str]:
    rows = []
    for dataset in record["datasets"]:
        by_setting = {(s["sampler"], s["steps"]): s for s in dataset["samplers"]}
        floor = dataset["floor"]
        shown = [("ddim", 1), ("ddim", 10), ("ddim", 100), ("ddpm", 100), ("ddpm", 500)]
        result = "; ".join(
            f"{sampler.upper()} T={steps}: MMD^2 {by_setting[sampler, steps]['mmd2']:.4f}, "
            f"SW2 {by_setting[sampler, steps]['sliced_w2']:.3f}"
            for sampler, steps in shown
        )
        result += (
            f" (data vs data: {floor['mmd2']:.4f}, {floor['sliced_w2']:.3f}); test "
            f"{dataset['test_nats_per_dim']:.3f} nats/dim"
        )
        if "log_prob_mean_abs_error" in dataset:
            result += (
                f"; ODE log-density off the exact one by {dataset['log_prob_mean_abs_error']:.3f}"
                f" nats/point on average (ELBO {dataset['elbo_mean']:.3f}, exact "
                f"{dataset['exact_mean_log_prob']:.3f})"
            )
        speed = (
            f"1,000 samples: DDIM T=10 {by_setting['ddim', 10]['seconds_per_1000']:.3f} s, "
            f"T=100 {by_setting['ddim', 100]['seconds_per_1000']:.2f} s (median of "
            f"{record['settings']['timing_repeats']}); trained {dataset['train_steps']} steps in "
            f"{dataset['fit_seconds']:.0f} s"
        )
        name = f"Diffusion, {dataset['dataset'].replace('_', ' ')}"
        rows.append(row(record, name, f"2D points, {dataset['schedule']}", result, speed))
    return rows


ROWS = {
    "char_gpt": lambda record: [char_gpt_row(record)],
    "kv_cache": kv_cache_rows,
    "gated_pixelcnn": gated_pixelcnn_rows,
    "pixelcnn_quality": lambda record: [pixelcnn_quality_row(record)],
    "toy_quality": toy_quality_rows,
    "vq_multimodal": vq_multimodal_rows,
    "latent": latent_rows,
    "diffusion": diffusion_rows,
    "speed": speed_rows,
}


def table() -> str:
    lines = list(HEADER)
    for path in sorted((ROOT / "benchmarks" / "results").glob("*.json")):
        record = json.loads(path.read_text())
        family = next(name for name in ROWS if record["benchmark"].startswith(name))
        lines.extend(ROWS[family](record))
    return "\n".join(lines)


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    before, rest = text.split(START)
    _, after = rest.split(END)
    readme.write_text(f"{before}{START}\n{table()}\n{END}{after}")


if __name__ == "__main__":
    main()
