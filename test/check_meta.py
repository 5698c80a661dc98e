#!/usr/bin/python3
"""Validate META.json against the PGXN Meta Spec 1.0.0 (https://pgxn.org/spec/)
and check that its version agrees with the control file and CHANGELOG.md."""
import json
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$")
LICENSES = {"agpl_3", "apache_1_1", "apache_2_0", "artistic_1", "artistic_2", "bsd", "freebsd", "gfdl_1_2",
            "gfdl_1_3", "gpl_1", "gpl_2", "gpl_3", "lgpl_2_1", "lgpl_3_0", "mit", "mozilla_1_0", "mozilla_1_1",
            "openssl", "perl_5", "postgresql", "qpl_1_0", "ssleay", "sun", "zlib", "open_source",
            "restricted", "unrestricted", "unknown"}
STATUSES = {"stable", "testing", "unstable"}
errors = []


def need(cond, message):
    if not cond:
        errors.append(message)


def check_prereqs(prereqs):
    for phase, relations in prereqs.items():
        need(phase in {"configure", "build", "test", "runtime", "develop"}, f"prereqs: unknown phase {phase}")
        for relation, deps in relations.items():
            need(relation in {"requires", "recommends", "suggests", "conflicts"},
                 f"prereqs.{phase}: unknown relation {relation}")
            for name, version in deps.items():
                need(isinstance(version, str) and (version == "0" or re.match(r"^[<>=!]*\s*\d", version)),
                     f"prereqs.{phase}.{relation}.{name}: bad version range {version!r}")


def main():
    meta = json.load(open(os.path.join(ROOT, "META.json"), encoding="utf-8"))
    for key in ("name", "abstract", "maintainer", "license", "provides", "meta-spec", "version"):
        need(key in meta, f"missing required key {key}")
    need(meta.get("meta-spec", {}).get("version") == "1.0.0", "meta-spec.version must be 1.0.0")
    need(re.match(r"^[A-Za-z0-9][A-Za-z0-9_-]*$", meta.get("name", "")) is not None, "name: invalid")
    need(SEMVER.match(meta.get("version", "")) is not None, "version: not semver")
    maint = meta.get("maintainer")
    need(isinstance(maint, str) or (isinstance(maint, list) and maint), "maintainer: string or list")
    lic = meta.get("license")
    names = [lic] if isinstance(lic, str) else list(lic) if isinstance(lic, (list, dict)) else []
    need(names and all(n in LICENSES or isinstance(lic, dict) for n in names), f"license: {lic!r}")
    for ext, spec in meta.get("provides", {}).items():
        need("file" in spec and os.path.exists(os.path.join(ROOT, spec["file"])) or "file" not in spec,
             f"provides.{ext}.file missing on disk")
        need(SEMVER.match(spec.get("version", "")) is not None, f"provides.{ext}.version: not semver")
    need(meta.get("release_status", "stable") in STATUSES, "release_status: invalid")
    check_prereqs(meta.get("prereqs", {}))
    for key in meta:
        need(key in {"name", "abstract", "description", "version", "maintainer", "license", "prereqs",
                     "provides", "no_index", "release_status", "resources", "generated_by", "tags",
                     "meta-spec"} or key.startswith("x_") or key.startswith("X_"), f"unknown key {key}")

    control = open(os.path.join(ROOT, "pg_personalize.control"), encoding="utf-8").read()
    control_version = re.search(r"default_version\s*=\s*'([^']+)'", control).group(1)
    need(meta["version"] == control_version, f"META.json version {meta['version']} != control {control_version}")
    need(meta["provides"]["pg_personalize"]["version"] == control_version, "provides version != control")
    changelog = open(os.path.join(ROOT, "CHANGELOG.md"), encoding="utf-8").read()
    need(re.search(r"^## \[?" + re.escape(control_version) + r"\b", changelog, re.M) is not None,
         f"CHANGELOG.md has no entry for {control_version}")

    if errors:
        sys.exit("META.json: " + "; ".join(errors))
    print(f"META.json: valid PGXN Meta Spec 1.0.0, version {meta['version']}")


if __name__ == "__main__":
    main()
