#!/bin/bash
# Cold liver CT runs whose probe memory (probe.json beside the cached graphs) is 20 minutes old,
# then recent, for two code trees, alternated (docs/BENCHMARK_E2E.md, "Session 18").
# Usage: scripts/measure_probe_memory.sh BEFORE_TREE AFTER_TREE   (each a checkout's root)
# Needs the bench's liver_512 case (bench/benchlib/e2e.py makes it) and the checkout's .venv.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
before=$(cd "$1" && pwd)/UNetPlusPlus
after=$(cd "$2" && pwd)/UNetPlusPlus
cd "$root/bench"
. "$root/.venv/bin/activate"
export PYTHONPATH="$root/UNetPlusPlus"
python -m compileall -q "$before" "$after" > /dev/null
B=before=$before; A=after=$after
age() {  # every remembered choice of both trees' own caches ($TMPDIR/unetpp-e2e-*), $1 s back
  python - "$1" <<'PY'
import glob, json, sys, tempfile, time
for path in glob.glob(f"{tempfile.gettempdir()}/unetpp-e2e-*/graphs/*/*/probe.json"):
    data = json.load(open(path))
    for entry in data.values():
        entry["time"] = time.time() - float(sys.argv[1])
    json.dump(data, open(path, "w"))
PY
}
run() { python -m benchlib.e2e --cases liver_512 --rounds 1 --own-cache --code "$1" | grep '^r0' | sed "s/^r0/$2/"; }
echo "== start $(date -u +%H:%M:%S) $(uptime)"
run "$B,$A" first  # both trees get their graphs and a memory
for i in 1 2 3 4 5; do
  if [ $((i % 2)) = 0 ]; then C=$A,$B; else C=$B,$A; fi
  age 1200
  run "$C" aged
done
echo "== $(date -u +%H:%M:%S) $(uptime)"
for i in 1 2 3; do
  if [ $((i % 2)) = 0 ]; then C=$A,$B; else C=$B,$A; fi
  run "$C" recent
done
echo "== end $(date -u +%H:%M:%S) $(uptime)"
