"""Live streaming transcription: ``speechedge demo asr [--model DIR] [--input mic|FILE|-]``.

Runs an exported streaming ASR folder (``speechedge export`` of a streaming student; without ``--model`` the
shipped ``asr_stream``) through
:class:`speechedge.runtime.StreamingASR`: the partial text is updated after every chunk and finalised at a
pause (0.6 s without new characters while the input is quiet); each line shows the per-chunk latency and the
real-time factor. ``--json`` prints one object per finalised segment. The text comes from the lexicon decoder
(words of the folder's ``words.txt`` or ``--words``) where there is a word list, else from greedy CTC
(``--decoder``). Torch-free.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from speechedge.runtime import StreamingASR

from .audio_input import AudioInputError, open_source

__all__ = ["run_asr"]


def run_asr(model_dir: str | None, *, input_spec: str = "mic", realtime: bool = False, device=None,
            max_seconds: float | None = None, precision: str = "auto", as_json: bool = False,
            pause_s: float = 0.6, out=None, decoder: str = "auto", words=None) -> int:
    from speechedge.pretrained import ASR_STREAM, resolve_model

    out = out or sys.stdout
    try:
        asr = StreamingASR(resolve_model(model_dir, default=ASR_STREAM), precision=precision, decoder=decoder,
                           words=words)
    except (ImportError, ValueError, FileNotFoundError) as e:
        print(f"speechedge demo asr: {e}", file=sys.stderr)
        return 2
    try:
        source = open_source(input_spec, realtime=realtime, device=device, max_seconds=max_seconds)
    except AudioInputError as e:
        print(f"speechedge demo asr: {e}", file=sys.stderr)
        return 2
    tty = out.isatty() and not as_json
    if not as_json:
        lex = f", {len(asr.word_list)} words" if asr.lexicon is not None else ""
        print(f"transcribing {source.device_name} ({asr.meta['chunk_ms']} ms chunks, {asr.net.path.name}, "
              f"{asr.decoder_name} decoding{lex}); Ctrl-C to stop", file=sys.stderr)
    seg_start_s, last_change_s, last_len = 0.0, 0.0, 0
    audio_s, segments = 0.0, []
    t0 = time.perf_counter()

    def finalise(now: float) -> None:
        nonlocal seg_start_s
        text = asr.end_segment()
        if text:
            seg = {"start_s": round(seg_start_s, 2), "end_s": round(now, 2), "text": text}
            segments.append(seg)
            if as_json:
                print(json.dumps(seg), file=out, flush=True)
            else:
                print(("\r" if tty else "") + f"[{seg['start_s']:7.2f} - {seg['end_s']:7.2f}] {text}" +
                      (" " * 20 if tty else ""), file=out, flush=True)
        seg_start_s = now

    try:
        for block in source:
            asr.push(block)
            audio_s += len(block) / 16000
            if len(asr.text_ids) != last_len:
                last_len, last_change_s = len(asr.text_ids), audio_s
            quiet = float(np.sqrt(np.mean(block ** 2))) < 0.01 if len(block) else True
            if asr.segment_ids and audio_s - last_change_s >= pause_s and quiet:
                finalise(audio_s)
            elif tty and asr.chunks:
                partial = asr.segment_text
                ms = 1000 * asr.compute_s / asr.chunks
                print(f"\r> {partial[-60:]:<60} | {ms:5.1f} ms/chunk RTF {ms / asr.meta['chunk_ms']:.3f}", end="",
                      file=out, flush=True)
    except KeyboardInterrupt:
        source.stop()
    asr.flush_audio()  # the last partial chunk too; finalise() ends the segment (the lexicon's last word)
    finalise(audio_s)
    wall = time.perf_counter() - t0
    ms = 1000 * asr.compute_s / max(1, asr.chunks)
    summary = {"audio_s": round(audio_s, 2), "wall_s": round(wall, 2), "chunks": asr.chunks,
               "ms_per_chunk": round(ms, 3), "model_real_time_factor": round(ms / asr.meta["chunk_ms"], 4),
               "dropped_blocks": source.dropped, "segments": len(segments), "text": asr.text}
    if as_json:
        print(json.dumps({"summary": summary}), file=out, flush=True)
    else:
        print(("\n" if tty else "") + "summary: " + ", ".join(f"{k} {v}" for k, v in summary.items() if k != "text"),
              file=out)
    return 0
