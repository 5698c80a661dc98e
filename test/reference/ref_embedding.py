"""Reference values for the embedding type: distances and exact top-K (numpy, float64)."""
import io

import numpy as np


def f32_text(values):
    """pgvector-style text of float32 values, shortest round-trip digits."""
    return "[" + ",".join(np.format_float_positional(np.float32(v), unique=True, trim="-")
                          for v in values) + "]"


def embedding_distances():
    rng = np.random.default_rng(20261123)
    out = io.StringIO()
    out.write("id\ta\tb\tl2\tinner\tcosine\tnorm_a\n")
    for i in range(200):
        dim = int(rng.integers(1, 130))
        scale = float(10.0 ** rng.integers(-3, 4))
        a = (rng.standard_normal(dim) * scale).astype(np.float32)
        b = (rng.standard_normal(dim) * scale).astype(np.float32)
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        l2 = np.sqrt(np.sum((a64 - b64) ** 2))
        ip = np.dot(a64, b64)
        cos = 1.0 - ip / (np.linalg.norm(a64) * np.linalg.norm(b64))
        out.write(f"{i}\t{f32_text(a)}\t{f32_text(b)}\t{l2!r}\t{ip!r}\t{cos!r}\t{np.linalg.norm(a64)!r}\n")
    return out.getvalue()


def topk_reference():
    """Corpus, queries and exact top-10 ids per operator, ranked in float64."""
    rng = np.random.default_rng(7)
    corpus = rng.standard_normal((2000, 16)).astype(np.float32)
    queries = rng.standard_normal((8, 16)).astype(np.float32)
    c64, q64 = corpus.astype(np.float64), queries.astype(np.float64)
    corpus_txt = "".join(f"{i + 1}\t{f32_text(v)}\n" for i, v in enumerate(corpus))
    queries_txt = "".join(f"{i + 1}\t{f32_text(v)}\n" for i, v in enumerate(queries))
    rows = []
    for qi, q in enumerate(q64):
        scores = {
            "<->": np.sqrt(((c64 - q) ** 2).sum(axis=1)),
            "<#>": -(c64 @ q),
            "<=>": 1.0 - (c64 @ q) / (np.linalg.norm(c64, axis=1) * np.linalg.norm(q)),
        }
        for op, s in scores.items():
            order = np.argsort(s, kind="stable")[:10]
            rows += [f"{qi + 1}\t{op}\t{r + 1}\t{idx + 1}\t{s[idx]!r}\n" for r, idx in enumerate(order)]
    return {"topk_corpus.tsv": corpus_txt, "topk_queries.tsv": queries_txt, "topk_expected.tsv": "".join(rows)}


def files():
    result = {"embedding_distances.tsv": embedding_distances()}
    result.update(topk_reference())
    return result
