#!/usr/bin/python3
"""Adult (UCI census income): train a logistic baseline with scikit-learn on adult.data, score
adult.test, write the predictions and the reference fairness figures by sex and race
(scikit-learn confusion matrices, fairlearn's definitions: test/reference/ref_fairness.py).

    /usr/bin/python3 bench/validate_fairness.py DATA_DIR OUT_DIR
"""
import csv
import os
import sys

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder, StandardScaler

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "reference"))
from ref_fairness import by_group, fmt, summary  # noqa: E402

NUMERIC = ["age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"]
CATEGORICAL = ["workclass", "education", "marital-status", "occupation", "relationship", "race", "sex", "native-country"]


def load(path):
    with open(path, newline="") as f:
        rows = [[v.strip() for v in r] for r in csv.reader(f) if r and len(r) > 1]
    header, rows = rows[0], rows[1:]
    cols = {h: np.array([r[i] for r in rows], dtype=object) for i, h in enumerate(header)}
    y = np.array([v.rstrip(".") == ">50K" for v in cols["Y"]])
    return cols, y


def main():
    data_dir, out_dir = sys.argv[1], sys.argv[2]
    train, y_train = load(os.path.join(data_dir, "adult.data"))
    test, y_test = load(os.path.join(data_dir, "adult.test"))
    scaler = StandardScaler().fit(np.column_stack([train[c].astype(float) for c in NUMERIC]))
    encoder = OneHotEncoder(handle_unknown="ignore").fit(np.column_stack([train[c] for c in CATEGORICAL]))

    def features(cols):
        num = scaler.transform(np.column_stack([cols[c].astype(float) for c in NUMERIC]))
        cat = encoder.transform(np.column_stack([cols[c] for c in CATEGORICAL])).toarray()
        return np.hstack([num, cat])

    model = LogisticRegression(max_iter=2000).fit(features(train), y_train)
    score = model.predict_proba(features(test))[:, 1]
    yhat = score >= 0.5
    print(f"logistic baseline: test accuracy {np.mean(yhat == y_test):.4f} on {len(y_test)} rows")

    with open(os.path.join(out_dir, "predictions.tsv"), "w") as f:
        f.write("id\tsex\trace\tlabel\tscore\n")
        for i in range(len(y_test)):
            f.write(f"{i + 1}\t{test['sex'][i]}\t{test['race'][i]}\t{'t' if y_test[i] else 'f'}\t{score[i]!r}\n")
    with open(os.path.join(out_dir, "groups.tsv"), "w") as g, open(os.path.join(out_dir, "summary.tsv"), "w") as s:
        for attr in ["sex", "race"]:
            rows = by_group(test[attr], y_test, yhat)
            for r in rows:
                g.write(f"{attr}\t{r[0]}\t{r[1]}\t" + "\t".join(fmt(v) for v in r[2:]) + "\n")
            s.write(attr + "\t" + "\t".join(fmt(v) for v in summary(rows)) + "\n")


if __name__ == "__main__":
    main()
