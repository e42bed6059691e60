"""Per-caller variation: seeded and deterministic, noise at the asked SNR, exact speech
range, silence jitter within bounds, a telephone band that removes everything above
4 kHz."""

from __future__ import annotations

import math
from pathlib import Path

import attrs
import numpy as np
import pytest

from orchestrator.audio import rms, samples_for_ms, speech_like, tone, write_wav
from orchestrator.audio.voices.variation import (
    Variation,
    noise,
    quantise_speed,
    speech_bounds,
    telephone_band,
)

#: A clean "clip": 100 ms of digital silence, 1.2 s of speech-like sound, 150 ms silence.
CLIP = np.concatenate(
    [np.zeros(2400, np.int16), speech_like(1200, seed=3, dbfs=-18), np.zeros(3600, np.int16)]
)


def band_power(x: np.ndarray, lo: float, hi: float, rate: int = 24000) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    f = np.fft.rfftfreq(x.size, 1.0 / rate)
    return float(spectrum[(f >= lo) & (f < hi)].sum())


def test_speech_bounds_skip_the_engines_padding() -> None:
    start, end = speech_bounds(CLIP)
    assert 2400 <= start < 2400 + 240  # within the first syllable's 10 ms attack
    assert 2400 + 28000 <= end <= 2400 + 28800
    assert speech_bounds(np.zeros(100, np.int16)) == (0, 0)


def test_speeds_are_quantised_so_every_clip_can_be_made_first() -> None:
    assert quantise_speed(1.07) == 1.05 and quantise_speed(0.93) == 0.95
    v = Variation(speed_range=(0.9, 1.1))
    assert v.speeds(1.0) == (0.9, 0.95, 1.0, 1.05, 1.1)
    assert Variation().speeds(1.3) == (1.3,)
    v = Variation(speed_range=(0.9, 1.1), voices=("a", "b", "c"), seed=7)
    callers = [v.caller(i, voice=None, speed=1.0) for i in range(200)]
    assert callers == [v.caller(i, voice=None, speed=1.0) for i in range(200)]
    assert {s for _, s in callers} == set(v.speeds(1.0))
    assert {voice for voice, _ in callers} == {"a", "b", "c"}
    other = Variation(speed_range=(0.9, 1.1), voices=("a", "b", "c"), seed=8)
    assert callers != [other.caller(i, voice=None, speed=1.0) for i in range(200)]
    assert Variation().caller(5, voice="x", speed=1.2) == ("x", 1.2)


def test_render_is_deterministic_per_seed_caller_and_turn() -> None:
    v = Variation(noise="pink", snr_db=12, jitter_ms=100, telephone=True, seed=1)
    a = v.render(CLIP, index=3, turn=1, lead_ms=200, tail_ms=300)
    b = v.render(CLIP, index=3, turn=1, lead_ms=200, tail_ms=300)
    np.testing.assert_array_equal(a.samples, b.samples)
    assert (a.speech_start, a.speech_end) == (b.speech_start, b.speech_end)
    assert not a.samples.flags.writeable
    for other in (
        v.render(CLIP, index=4, turn=1, lead_ms=200, tail_ms=300),
        v.render(CLIP, index=3, turn=2, lead_ms=200, tail_ms=300),
        attrs.evolve(v, seed=2).render(CLIP, index=3, turn=1, lead_ms=200, tail_ms=300),
    ):
        assert other.samples.size != a.samples.size or not np.array_equal(other.samples, a.samples)


def test_speech_range_is_exact_and_jitter_stays_in_bounds() -> None:
    start, end = speech_bounds(CLIP)
    plain = Variation().render(CLIP, index=0, lead_ms=200, tail_ms=300)
    assert plain.speech_start == samples_for_ms(200)
    assert plain.speech_end == plain.speech_start + end - start
    assert plain.samples.size == plain.speech_end + samples_for_ms(300)
    np.testing.assert_array_equal(
        plain.samples[plain.speech_start : plain.speech_end], CLIP[start:end]
    )
    assert (
        not plain.samples[: plain.speech_start].any()
        and not plain.samples[plain.speech_end :].any()
    )
    v = Variation(jitter_ms=100)
    leads, tails = [], []
    for i in range(100):
        r = v.render(CLIP, index=i, lead_ms=200, tail_ms=300)
        np.testing.assert_array_equal(r.samples[r.speech_start : r.speech_end], CLIP[start:end])
        leads.append(r.speech_start)
        tails.append(r.samples.size - r.speech_end)
    assert samples_for_ms(200) <= min(leads) and max(leads) <= samples_for_ms(300)
    assert samples_for_ms(300) <= min(tails) and max(tails) <= samples_for_ms(400)
    assert len(set(leads)) > 50  # really jittered


@pytest.mark.parametrize("kind", ["white", "pink"])
@pytest.mark.parametrize("snr_db", [5.0, 20.0])
def test_noise_bed_has_the_asked_snr(kind: str, snr_db: float) -> None:
    start, end = speech_bounds(CLIP)
    r = Variation(noise=kind, snr_db=snr_db).render(CLIP, index=2, lead_ms=100, tail_ms=100)
    clean = np.zeros(r.samples.size)
    clean[r.speech_start : r.speech_end] = CLIP[start:end]
    bed = r.samples.astype(np.float64) - clean  # the noise alone (int16 rounding included)
    measured = 20 * math.log10(rms(CLIP[start:end]) / rms(bed))
    assert measured == pytest.approx(snr_db, abs=0.05)
    assert rms(bed[: r.speech_start]) > 0  # the bed covers the silences too


def test_pink_noise_falls_3_db_per_octave_and_white_is_flat() -> None:
    rng = np.random.default_rng(0)
    pink, white = noise("pink", 240000, rng), noise("white", 240000, rng)
    assert rms(pink) == pytest.approx(1.0) and rms(white) == pytest.approx(1.0)
    octave = 10 * math.log10(band_power(pink, 500, 1000) / band_power(pink, 1000, 2000))
    assert octave == pytest.approx(0.0, abs=0.3)  # equal power per octave = -3 dB/octave
    flat = 10 * math.log10(band_power(white, 1000, 2000) / band_power(white, 2000, 3000))
    assert flat == pytest.approx(0.0, abs=0.3)
    with pytest.raises(ValueError, match="noise kind"):
        noise("brown", 10, rng)


def test_noise_from_a_wav_file_is_looped_from_a_random_offset(tmp_path: Path) -> None:
    hum = tone(120, 250, dbfs=-30)
    path = tmp_path / "hum.wav"
    write_wav(path, hum)
    v = Variation(noise=str(path), snr_db=10)
    bed = v.load_noise()
    assert bed is not None
    start, end = speech_bounds(CLIP)
    r = v.render(CLIP, index=0, lead_ms=0, tail_ms=0, noise_file=bed)
    residue = r.samples.astype(np.float64) - CLIP[start:end]
    assert 20 * math.log10(rms(CLIP[start:end]) / rms(residue)) == pytest.approx(10, abs=0.1)
    peak = np.argmax(np.abs(np.fft.rfft(residue)))
    assert peak * 24000 / residue.size == pytest.approx(120, abs=2)  # it is the hum
    with pytest.raises(ValueError, match="pass its samples"):
        v.render(CLIP, index=0)


def test_telephone_band_keeps_the_voice_band_and_removes_the_rest() -> None:
    x = np.random.default_rng(1).integers(-8000, 8000, 48000).astype(np.int16)
    y = telephone_band(x)
    assert y.size == x.size and y.dtype == np.int16
    above = 10 * math.log10(band_power(y, 4200, 12000) / band_power(x, 4200, 12000))
    assert above < -45
    voice = 10 * math.log10(band_power(y, 300, 3000) / band_power(x, 300, 3000))
    assert abs(voice) < 0.5  # µ-law adds quantisation noise, not loss
    r = Variation(telephone=True).render(CLIP, index=0, lead_ms=100, tail_ms=100)
    assert band_power(r.samples, 4200, 12000) < 1e-4 * band_power(r.samples, 0, 4000)


def test_bad_values_are_named() -> None:
    with pytest.raises(ValueError, match="speed_range"):
        Variation(speed_range=(1.2, 0.9))
    with pytest.raises(ValueError, match="jitter_ms"):
        Variation(jitter_ms=-1)
    with pytest.raises(ValueError, match="snr_db"):
        Variation(snr_db=math.inf)


def test_what_varies() -> None:
    assert not Variation().varies and not Variation(voices=("one",)).varies
    assert Variation(voices=("a", "b")).varies and not Variation(voices=("a", "b")).renders
    assert Variation(telephone=True).renders and Variation(speed_range=(1, 1.1)).varies
