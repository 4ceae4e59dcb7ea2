"""How long the whole probe takes beside its training: reads a finished run's pipeline.json (stage seconds, as the pipeline
measured them) and prints each stage's share and the ratio whole probe ÷ training (target on a GPU: at most 1.5).

    python bench/probe_overhead.py runs/fmnist-lite0-gpu [runs/other ...]

For the CAM-vs-evaluation ratio and Grad-CAM against pytorch-grad-cam, see bench/gradcam_speed.py (--run, --batch 16)."""
import json, sys
from pathlib import Path

def overhead(run:Path)->dict:
    st = json.loads((run/'pipeline.json').read_text())['stages']
    secs = {k: v.get('seconds', 0.0) for k, v in st.items() if v.get('status') == 'done'}
    train = secs.get('train')
    if not train: raise SystemExit(f"{run}: no finished training stage in pipeline.json (run the pipeline with the train stage)")
    return {'run': str(run), 'train_s': train, 'total_s': round(sum(secs.values()), 1), 'probe_over_training': round(sum(secs.values())/train, 2),
            'stages_s': secs}

if __name__ == '__main__':
    if len(sys.argv) < 2: raise SystemExit(__doc__)
    for r in sys.argv[1:]: print(json.dumps(overhead(Path(r)), indent=1))
