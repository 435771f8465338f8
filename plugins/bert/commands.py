"""``bench data vocab`` and ``bench data pretraining``: BERT's data preparation commands."""

from __future__ import annotations

import time

import click

# Accepts the seed's spelling `--do_lower_case=True` as well as a bare `--do_lower_case`.
_BOOL = {"type": click.BOOL, "is_flag": False, "flag_value": True}


@click.command(name="vocab")
@click.option("--input", "inputs", multiple=True, required=True, metavar="TEXT",
              help="Text file(s) to learn the vocabulary from. Repeatable.")
@click.option("--size", type=int, default=30522, show_default=True,
              help="Vocabulary size (BERT-base uncased: 30522).")
@click.option("--output", required=True, help="The vocab.txt to write.")
@click.option("--do_lower_case", default=True, show_default=True, **_BOOL)
@click.option("--min_frequency", type=int, default=2, show_default=True)
def vocab(inputs: tuple[str, ...], size: int, output: str, do_lower_case: bool,
          min_frequency: int) -> None:
    """Train a WordPiece vocabulary (BERT vocab.txt) from text files.

    The trainer (the tokenizers library) breaks frequency ties in hash order, so two runs can
    differ in a few tokens: keep the vocab.txt beside the TFRecords made with it.
    """
    from plugins.bert.tokenizer import train_vocab

    count = train_vocab(list(inputs), size, output, do_lower_case, min_frequency)
    click.echo(f"wrote {output}: {count} tokens")


@click.command(name="pretraining")
@click.option("--input_file", required=True,
              help="Text: one sentence per line, blank lines between documents. "
                   "Comma-separated files or globs.")
@click.option("--output_file", required=True, help="TFRecord file(s), comma-separated.")
@click.option("--vocab_file", required=True, help="The BERT vocab.txt.")
@click.option("--do_lower_case", default=True, show_default=True, **_BOOL)
@click.option("--do_whole_word_mask", default=False, show_default=True, **_BOOL)
@click.option("--max_seq_length", type=int, default=128, show_default=True)
@click.option("--max_predictions_per_seq", type=int, default=20, show_default=True)
@click.option("--random_seed", type=int, default=12345, show_default=True)
@click.option("--dupe_factor", type=int, default=10, show_default=True,
              help="How many times each document is used with different masks.")
@click.option("--masked_lm_prob", type=float, default=0.15, show_default=True)
@click.option("--short_seq_prob", type=float, default=0.1, show_default=True)
def pretraining(**flags: object) -> None:
    """Masked-LM / next-sentence TFRecords from text (Google BERT's create_pretraining_data)."""
    from plugins.bert.pretraining_data import PretrainingDataOptions, create_pretraining_data

    start = time.perf_counter()
    count, outputs = create_pretraining_data(PretrainingDataOptions(**flags))
    click.echo(f"wrote {count} instances to {', '.join(outputs)} "
               f"in {time.perf_counter() - start:.1f} s")


def add_commands(cli: click.Group) -> None:
    from harness import data_group

    group = data_group(cli)
    group.add_command(vocab)
    group.add_command(pretraining)
