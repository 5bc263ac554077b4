"""Text schedules (sampler_schedule, checkpoint_schedule): Deforum's string form held per frame, against an oracle of
Deforum's is_single_string path; errors name the text and the column; the table's text columns round-trip."""

import numexpr
import pytest
from hypothesis import given
from hypothesis import strategies as st

from anim.errors import ScheduleError
from anim.keyframes import FrameTable, PromptFrame, parse_text_schedule
from anim.keyframes.texts import undecorate_text


def deforum_texts(string: str, max_frames: int) -> list[str]:
    """Deforum's string schedule, restated from FrameInterpolater.parse_key_frames + get_inbetweens(is_single_string):
    split at every comma, then at colons (key, value); a key is a number or int(numexpr(key)) with max_f; the value
    with every quote and parenthesis deleted holds from its frame on (frame 0 must be a key)."""
    def sanitize(text: str) -> str:
        return "".join(ch for ch in text if ch not in "'\"()")

    frames = {}
    for part in string.split(","):
        key, value = part.split(":")[:2]
        clean = sanitize(key).strip()
        frame = int(clean) if clean.isdigit() else int(numexpr.evaluate(clean, local_dict={"max_f": max_frames - 1}))
        frames[frame] = value.strip()
    out, current = [], None
    for i in range(max_frames):
        current = sanitize(frames[i]) if i in frames else current
        out.append(current)
    return out


def texts(spec, max_frames=6, default=None, canonical=None):
    return list(parse_text_schedule(spec, "sampler_schedule", canonical).evaluate(max_frames, default))


def test_held_from_each_keyframe_with_quotes_optional():
    assert texts('0: ("Euler a"), 2: (DPM++ 2M Karras), 4: \'ddim\'') == ["Euler a"] * 2 + ["DPM++ 2M Karras"] * 2 \
        + ["ddim"] * 2
    assert texts("3: (b), 0: (a)") == ["a"] * 3 + ["b"] * 3  # keys in any order


def test_expression_keys_resolve_with_max_f_and_a_later_key_wins():
    assert texts('0: ("a"), max_f/2: ("b"), "max_f-1": ("c")', 7) == ["a"] * 3 + ["b"] * 2 + ["c"] * 2
    assert texts("0: (a), max_f/2: (b), 2: (c)", 5) == ["a", "a", "c", "c", "c"]  # max_f/2 = 2, written first


def test_frames_before_the_first_key_take_the_default_else_the_first_text():
    assert texts("2: (b)", 4, default="a") == ["a", "a", "b", "b"]
    assert texts("2: (b)", 4) == ["b"] * 4
    assert texts("b", 3, default="a") == ["b"] * 3  # a lone text is frame 0's


def test_text_keeps_commas_colons_and_inner_brackets():
    spec = '0: ("C:\\models\\a, b.safetensors"), 2: ("model (v2).safetensors")'
    assert texts(spec, 3) == ["C:\\models\\a, b.safetensors"] * 2 + ["model (v2).safetensors"]
    assert undecorate_text('  ( " x y " ) ', 0) == ("x y", 6)


def test_mapping_form():
    assert texts({0: "euler_a", "max_f": "ddim"}, 3) == ["euler_a", "euler_a", "ddim"]
    with pytest.raises(ScheduleError, match=r"sampler_schedule\[2\]: expected text, got int 5"):
        texts({2: 5})


@pytest.mark.parametrize("spec, message", [
    ('0: ("Euler a"), 3', r'expected FRAME: \("TEXT"\) at column 17'),
    ("0: ()", r"missing text at column 5"),
    ("0: (a), 0: (b)", r"frame 0 has two keyframes \(the first at column 1\)"),
    ("0: (a), q: (b)", r"unknown name 'q' at column 9"),
    ("0: (a", r"unclosed '\(' at column 4"),
    ("", r"no keyframes"),
    ("C:\\x.safetensors", r'needs its key, e.g. 0: \("C:\\x.safetensors"\)'),
])
def test_errors_name_the_schedule_the_text_and_the_column(spec, message):
    with pytest.raises(ScheduleError, match=r"^sampler_schedule: .*" + message):
        texts(spec)


def test_canonical_names_each_keyframe_and_its_column():
    def sampler(text):
        if text.lower() not in ("euler a", "ddim"):
            raise ValueError(f"unknown sampler '{text}'")
        return text.lower().replace(" ", "_")

    assert texts('0: ("Euler a"), 1: (DDIM)', 2, canonical=sampler) == ["euler_a", "ddim"]
    message = r"""^sampler_schedule: unknown sampler 'Eulr' at column 18 in "0: \(ddim\), 10: \('Eulr'\)"$"""
    with pytest.raises(ScheduleError, match=message):  # column 18: the E of Eulr
        texts("0: (ddim), 10: ('Eulr')", canonical=sampler)


NAMES = st.sampled_from(["Euler a", "DPM++ 2M Karras", "ddim", "model1.ckpt", "my_model.safetensors"])


@given(st.lists(st.tuples(st.integers(1, 30), NAMES), max_size=5), NAMES, st.integers(1, 40),
       st.sampled_from(['{k}: ("{v}")', "{k}:({v})", "{k}: ('{v}')", '"{k}": ("{v}")']))
def test_agrees_with_deforum_on_what_deforum_accepts(keys, first, max_frames, form):
    keyframes = dict([(0, first), *keys])
    spec = ", ".join(form.format(k=k, v=v) for k, v in keyframes.items())
    assert texts(spec, max_frames) == deforum_texts(spec, max_frames)


def test_table_text_columns_go_to_csv_and_back(tmp_path):
    prompts = [PromptFrame("a", "", "a", "", 0.0)] * 3
    table = FrameTable({"steps": [2, 2, 3]}, prompts,
                       texts={"sampler": ["euler_a", "ddim", "ddim"], "checkpoint": ["tiny", "1", "C:\\m, x.ckpt"]})
    assert table.row(1)["sampler"] == "ddim" and table.text_names == ["sampler", "checkpoint"]
    path = tmp_path / "schedule.csv"
    table.to_csv(path)
    assert path.read_text().splitlines()[0].startswith("frame,steps,sampler,checkpoint,blend_weight,prompt")
    back = FrameTable.from_csv(path)
    assert back.texts("checkpoint") == ("tiny", "1", "C:\\m, x.ckpt")  # text, even where it looks like a number
    assert back.texts("sampler") == table.texts("sampler") and back.names == ["steps"]
    with pytest.raises(ValueError, match="text column 'scheduler' is not one of"):
        FrameTable({}, prompts, texts={"scheduler": ["a"] * 3})
