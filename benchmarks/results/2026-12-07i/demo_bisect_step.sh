#!/bin/bash
# a git bisect step (run from the repository root of a worktree): good when `napari-sbtt demo` scores SBTT r >= 0.65
rm -rf /tmp/demo_bis
out=$(PYTHONPATH=$PWD/src python -m napari_sbtt.cli demo --out /tmp/demo_bis 2>&1 | tail -1)
echo "$(git log --oneline -1 | cut -c1-60) :: $out" >> /tmp/probe/bisect.log
r=$(echo "$out" | sed -n 's/.*SBTT \([0-9.]*\),.*/\1/p')
python -c "import sys; sys.exit(0 if float('$r') >= 0.65 else 1)"
