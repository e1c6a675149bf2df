"""Quality on the real clips in ../shared/data/clips (skipped where that folder is absent)."""
import pytest

from autolabel.evaluation.bench import bench_clip
from autolabel.core.pipeline import Settings

from conftest import SHARED_CLIPS

pytestmark = pytest.mark.skipif(not SHARED_CLIPS.is_dir(), reason="../shared/data/clips is absent")

# J of the plain reference (DIS medium, sequential warping, distance-weighted fusion, no
# occlusion handling) at keyframes every 10 frames; reproduced by `--fusion distance`.
REFERENCE_J = {"davis17-schoolgirls": 75.0}


@pytest.mark.parametrize("clip", sorted(REFERENCE_J))
def test_reliability_fusion_beats_the_reference(clip):
    result = bench_clip(SHARED_CLIPS / clip, keyframe_every=10, settings=Settings())
    assert result["metric"] == "J"
    assert result["score"] > REFERENCE_J[clip], result
    assert result["ece"] < 0.05, result
