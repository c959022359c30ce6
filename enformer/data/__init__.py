"""Basenji2 data: reading (`get_dataset`), augmentation, writing, conversion and generation.

Modules:
  basenji    — read the Basenji2 TFRecord layout (and the legacy basenji layout) as `tf.data`.
  augment    — stochastic shift and reverse complement, per example, seedable.
  write      — write the Basenji2 layout from (sequence, target) examples or FASTA + BED + targets.
  convert    — GENA-LM style conversion: recover coordinates, extend to a longer context, verify.
  generate   — build a Basenji2 data set from bigWig signal tracks (as basenji_data.py does).
  synthetic  — a small genome with planted motifs and tracks that are a known function of them.
  errors     — DataError: a failed record check as one line naming the file and record.

Submodules import TensorFlow only where they need it; import them directly
(`from enformer.data import basenji`) or use the names exported by `enformer`.
"""
