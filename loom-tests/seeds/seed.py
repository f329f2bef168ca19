#!/usr/bin/env python3
"""Seeded faults: applies each one-line fault of faults.json to the tree, runs the
tests named for it, records whether they failed (caught) and the first failure line,
and puts the line back (by replacing the fault with the original text, so edits made
meanwhile elsewhere in the file are kept). Usage: seed.py [ID...]; results are printed
as a Markdown table and appended to seeds/results.txt."""
import json, os, subprocess, sys, time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FAULTS = json.load(open(os.path.join(os.path.dirname(__file__), "faults.json")))
LOOM_TARGET = os.environ.get("SEED_LOOM_TARGET", "/work/target-h7-loom")
CORE_TARGET = os.environ.get("SEED_CORE_TARGET", "/work/target-h7")

def run(kind, names):
    env = dict(os.environ)
    if kind == "loom":
        env.update(RUSTFLAGS="--cfg loom", LOOM_MAX_PREEMPTIONS=env.get("LOOM_MAX_PREEMPTIONS", "2"),
                   CARGO_TARGET_DIR=LOOM_TARGET)
        cmd = ["cargo", "test", "--release", "-p", "loom-tests", "--no-fail-fast"]
        for n in names:
            cmd += ["--test", n]
        cmd += ["--", "--test-threads=1"]
    elif kind == "core":
        env.update(CARGO_TARGET_DIR=CORE_TARGET)
        cmd = ["cargo", "test", "--release", "-p", "kernel-core", "--lib", "--", *names]
    else:  # a workspace integration test binary of tests/
        env.update(CARGO_TARGET_DIR=CORE_TARGET)
        cmd = ["cargo", "test", "--release", "-p", "kptr-tests", "--no-fail-fast"]
        for n in names:
            cmd += ["--test", n]
    t = time.time()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3000)
    out = p.stdout + p.stderr
    msg = ""
    for l in out.splitlines():
        if "panicked at" in l or l.startswith("error"):
            i = out.splitlines().index(l)
            msg = " ".join(out.splitlines()[i:i + 2]).strip()
            break
    failed = [l.split()[1] for l in out.splitlines() if l.startswith("test ") and l.endswith("FAILED")]
    return p.returncode, failed, msg, time.time() - t

def main():
    ids = sys.argv[1:]
    rows = []
    for f in FAULTS:
        if ids and f["id"] not in ids:
            continue
        path = os.path.join(ROOT, f["file"])
        src = open(path).read()
        if src.count(f["old"]) != 1:
            rows.append((f["id"], f["what"], "NOT APPLIED (text not found once)", ""))
            continue
        at = src.index(f["old"])
        open(path, "w").write(src[:at] + f["new"] + src[at + len(f["old"]):])
        try:
            results = []
            for kind, names in f["tests"]:
                rc, failed, msg, secs = run(kind, names)
                results.append((kind, names, rc, failed, msg, secs))
        finally:
            cur = open(path).read()
            # Where it was applied, unless the file changed before it.
            if cur[at:at + len(f["new"])] == f["new"]:
                open(path, "w").write(cur[:at] + f["old"] + cur[at + len(f["new"]):])
            elif cur.count(f["new"]) == 1:
                open(path, "w").write(cur.replace(f["new"], f["old"], 1))
            else:
                print(f"!!! could not revert {f['id']} in {f['file']}", file=sys.stderr)
        caught = [r for r in results if r[2] != 0]
        verdict = "caught" if caught else "SURVIVED"
        detail = "; ".join(f"{','.join(r[3]) or r[1]}: {r[4][:160]}" for r in caught)
        rows.append((f["id"], f["what"], verdict, detail))
        line = f"| {f['id']} | {f['what']} | {verdict} | {detail} |"
        print(line, flush=True)
        with open(os.path.join(os.path.dirname(__file__), "results.txt"), "a") as o:
            o.write(line + "\n")

main()
