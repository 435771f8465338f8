"""WordPiece tokenization from a BERT ``vocab.txt`` (the ``tokenizers`` library) and vocab training."""

from __future__ import annotations

import os
from collections.abc import Iterable

from harness import BenchError, open_user_text

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# Google BERT's BasicTokenizer + WordpieceTokenizer: clean text, CJK characters split one per
# token, lower case and accent stripping with do_lower_case, punctuation split, greedy
# longest-match WordPiece with "##" continuations, words over 100 characters -> [UNK].
MAX_CHARS_PER_WORD = 100


def read_vocab(vocab_file: str) -> dict[str, int]:
    """token -> id, the id being the line number (as Google's ``load_vocab``)."""
    if not os.path.isfile(vocab_file):
        raise BenchError(f"{vocab_file}: no such vocabulary file")
    vocab: dict[str, int] = {}
    try:
        with open_user_text(vocab_file, "vocabulary file") as fh:
            for index, line in enumerate(fh):
                token = line.strip()
                if token:
                    vocab[token] = index
    except UnicodeDecodeError as exc:
        raise BenchError(f"{vocab_file}: not UTF-8 text (byte {exc.start})") from None
    missing = [t for t in SPECIAL_TOKENS[1:] if t not in vocab]
    if missing:
        raise BenchError(f"{vocab_file}: missing special token {missing[0]} "
                         f"(a BERT vocab.txt holds {', '.join(SPECIAL_TOKENS)})")
    return vocab


class WordPieceTokenizer:
    """BERT's full tokenizer over a vocab.txt; ``tokenize`` gives WordPiece strings."""

    def __init__(self, vocab_file: str, do_lower_case: bool = True) -> None:
        from tokenizers import Tokenizer, normalizers, pre_tokenizers
        from tokenizers.models import WordPiece

        self.vocab_file = vocab_file
        self.vocab = read_vocab(vocab_file)
        # Google's create_pretraining_data draws random replacements from the vocab's keys.
        self.vocab_words = list(self.vocab)
        self.unk_id = self.vocab["[UNK]"]
        tok = Tokenizer(WordPiece(self.vocab, unk_token="[UNK]",
                                  max_input_chars_per_word=MAX_CHARS_PER_WORD))
        # strip_accents=None follows lowercase, as BERT strips accents only when lower-casing.
        tok.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=None,
            lowercase=do_lower_case)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        self._tok = tok

    def tokenize(self, text: str) -> list[str]:
        return self._tok.encode(text, add_special_tokens=False).tokens

    def tokenize_batch(self, texts: list[str]) -> list[list[str]]:
        return [enc.tokens for enc in self._tok.encode_batch(texts, add_special_tokens=False)]

    def tokenize_with_offsets(self, text: str) -> list[tuple[str, int, int]]:
        """WordPiece tokens with their ``[start, end)`` character span in ``text`` (the
        original text, before lower-casing and accent stripping)."""
        encoding = self._tok.encode(text, add_special_tokens=False)
        return [(token, start, end) for token, (start, end) in zip(encoding.tokens,
                                                                   encoding.offsets)]

    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> list[int]:
        vocab, unk = self.vocab, self.unk_id
        return [vocab.get(token, unk) for token in tokens]


def train_vocab(inputs: list[str], size: int, output: str, do_lower_case: bool = True,
                min_frequency: int = 2) -> int:
    """Train a WordPiece vocabulary of at most ``size`` tokens on text files; write it as a
    BERT vocab.txt (one token per line, special tokens first); return its length."""
    from tokenizers import BertWordPieceTokenizer

    for path in inputs:
        if not os.path.isfile(path):
            raise BenchError(f"{path}: no such input file")
    if size < len(SPECIAL_TOKENS) + 1:
        raise BenchError(f"--size: must be > {len(SPECIAL_TOKENS)}, got {size}")
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):
        raise BenchError(f"{output}: folder {folder} does not exist")
    tok = BertWordPieceTokenizer(lowercase=do_lower_case, handle_chinese_chars=True,
                                 clean_text=True, strip_accents=None)
    tok.train(list(inputs), vocab_size=size, min_frequency=min_frequency,
              special_tokens=list(SPECIAL_TOKENS), show_progress=False)
    tokens = [t for t, _ in sorted(tok.get_vocab().items(), key=lambda item: item[1])]
    tmp = f"{output}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write("".join(f"{t}\n" for t in tokens))
    os.replace(tmp, output)
    return len(tokens)
