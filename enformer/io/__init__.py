"""File formats at the edge of the package: FASTA, BED, bigWig/bedGraph, Basenji target tables.

Modules (import them directly; nothing here loads TensorFlow):
  fasta    FastaStringExtractor: N-padded interval extraction, chr-prefix resolution.
  bed      read_bed / parse_region: genomic intervals as kipoiseq.Interval; read_sequences_bed
           (a data set's record index) and read_tss_bed.
  targets  read_targets / select_tracks: targets_{organism}.txt track tables.
  bigwig   write_bigwig / write_bedgraph / read_bigwig_bins: binned coverage tracks.
  lock     OutputLock: one live job per output (names the holder, takes over stale locks).
  atomic   atomic_path / atomic_open / atomic_directory: outputs complete or absent.
  outputs  OutputFolder: output folders whose manifest records each command's files, so
           overwrite removes only those.
"""
