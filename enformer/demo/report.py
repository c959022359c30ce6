"""The demo's `index.html`: key numbers, every file and plot of each step, timings.

Links are relative to the demo folder, so the folder can be moved or served as it is.
"""

import datetime
import html
import os
import pathlib
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Tuple

STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.4em 0; }
code { background: #f4f4f4; padding: 1px 4px; font-size: 0.9em; }
.files { font-size: 0.9em; columns: 2; } .ok { color: #080; } .bad { color: #b00; }
"""


def _e(value: Any) -> str:
  return html.escape(str(value))


def _number(value: Any, digits: int = 3) -> str:
  if isinstance(value, float):
    return f'{value:.{digits}f}'
  return _e(value)


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], digits: int = 3) -> str:
  """An HTML table; floats are rounded to `digits` and right-aligned."""
  head = ''.join(f'<th>{_e(h)}</th>' for h in header)
  body = []
  for row in rows:
    cells = ''.join(
        f'<td class="num">{_number(c, digits)}</td>'
        if isinstance(c, (int, float))
        else f'<td>{c if isinstance(c, Raw) else _e(c)}</td>'
        for c in row
    )
    body.append(f'<tr>{cells}</tr>')
  return f'<table><tr>{head}</tr>{"".join(body)}</table>'


class Raw(str):
  """A string inserted into the HTML without escaping (already HTML)."""


def link(out_dir: pathlib.Path, path: str, text: Optional[str] = None) -> Raw:
  relative = os.path.relpath(os.path.join(out_dir, path), out_dir)
  return Raw(f'<a href="{_e(relative)}">{_e(text or relative)}</a>')


def image(out_dir: pathlib.Path, path: str, alt: str = '') -> Raw:
  relative = os.path.relpath(os.path.join(out_dir, path), out_dir)
  return Raw(f'<a href="{_e(relative)}"><img src="{_e(relative)}" alt="{_e(alt or relative)}"></a>')


def _files(out_dir: pathlib.Path, folder: str) -> str:
  """Links to every file under `folder` (SavedModel variable shards collapsed to the folder)."""
  root = out_dir / folder
  if not root.exists():
    return ''
  items = []
  for path in sorted(p for p in root.rglob('*') if p.is_file()):
    relative = path.relative_to(out_dir).as_posix()
    size = path.stat().st_size
    items.append(f'<li>{link(out_dir, relative)} <small>({_size(size)})</small></li>')
  return (
      f'<details><summary>{len(items)} files in {_e(folder)}/</summary>'
      f'<ul class="files">{"".join(items)}</ul></details>'
  )


def _size(size: int) -> str:
  for unit in ('B', 'kB', 'MB', 'GB'):
    if size < 1024 or unit == 'GB':
      return f'{size:.0f} {unit}' if unit == 'B' else f'{size:.1f} {unit}'
    size /= 1024
  return str(size)


def _rel(out_dir: pathlib.Path, path: str) -> str:
  return os.path.relpath(path, out_dir)


def write_demo_report(
    out_dir: pathlib.Path,
    settings: Mapping[str, Any],
    records: Mapping[str, Any],
    total_seconds: float,
) -> pathlib.Path:
  """Writes out_dir/index.html from the demo's step records (`enformer.demo.run.StepRecord`)."""
  out_dir = pathlib.Path(out_dir)
  r = {name: record.results for name, record in records.items()}
  parts: List[str] = [
      '<!DOCTYPE html><html><head><meta charset="utf-8"><title>enformer demo</title>',
      f'<style>{STYLE}</style></head><body>',
      '<h1>enformer demo: a small Enformer trained, exported and used on a synthetic genome</h1>',
      f'<p>Mode <b>{_e(settings["name"])}</b>; made '
      f'{_e(datetime.datetime.now().isoformat(timespec="seconds"))}; '
      f'this run took {total_seconds:.0f} s (steps reused from earlier runs count with the time '
      'they took then). Re-running <code>enformer demo</code> reuses finished steps; '
      '<code>--overwrite</code> redoes everything.</p>',
  ]

  evaluation = r.get('evaluate', {})
  variants = r.get('variants', {})
  attribution = r.get('attribute', {})
  key_rows = []
  for organism in ('human', 'mouse'):
    if organism in evaluation:
      e = evaluation[organism]
      beats = e['mean_pearson_r'] > e['mean_shuffled_pearson_r']
      key_rows.append(
          (
              f'{organism}: mean test Pearson R (trained vs shuffled-label baseline)',
              Raw(
                  f'{e["mean_pearson_r"]:.3f} vs {e["mean_shuffled_pearson_r"]:.3f} '
                  f'<span class="{"ok" if beats else "bad"}">'
                  f'{"beats" if beats else "does NOT beat"} the baseline</span> '
                  '(per track: ' + ', '.join(f'{v:.2f}' for v in e['pearson_r']) + ')'
              ),
          )
      )
  if variants:
    hit, miss, ratio, stat = _sad_summary(variants)
    key_rows.append(
        (
            f'{stat} max-track |SAD|: motif-destroying vs far-from-motif SNVs',
            Raw(f'{hit:.4g} vs {miss:.4g} ({ratio:.1f}×; AUROC {variants["auroc"]:.2f})'),
        )
    )
  if attribution:
    key_rows.append(
        (
            'top 1% gradient × input bases inside planted motifs',
            Raw(
                f'{attribution["top_in_motifs"]:.0%} vs '
                f'{attribution["motif_base_rate"]:.1%}'
                f' of all bases ({attribution["enrichment"]:.1f}× enrichment)'
            ),
        )
    )
  if 'train' in r:
    key_rows.append(
        (
            'training',
            Raw(f'{r["train"]["steps"]} steps, {r["train"]["steps_per_second"]:.2f} steps/s'),
        )
    )
  parts += ['<h2>Key numbers</h2>', table(['', 'value'], key_rows)]

  timing_rows = [
      (name, record.seconds, 'reused' if record.reused else 'ran')
      for name, record in records.items()
  ]
  timing_rows.append(('total (this run)', total_seconds, ''))
  parts += ['<h2>Timings</h2>', table(['step', 'seconds', ''], timing_rows, digits=1)]

  if 'genome' in r:
    rows = []
    for organism, g in r['genome'].items():
      weights = '; '.join(
          f'{track}: ' + ' + '.join(f'{w:g}×{m}' for m, w in ws.items())
          for track, ws in g['track_weights'].items()
      )
      rows.append(
          (
              organism,
              link(out_dir, _rel(out_dir, g['fasta'])),
              ', '.join(f'{c} {n:,}' for c, n in g['chrom_sizes'].items()),
              link(out_dir, _rel(out_dir, g['motif_sites']), f'{g["num_sites"]} sites'),
              link(out_dir, _rel(out_dir, g['targets'])),
              weights,
          )
      )
    parts += [
        '<h2>1. Synthetic genomes</h2>',
        '<p>Random DNA with motif sites planted on both strands; each signal track is a sum '
        'of Gaussian bumps at the sites of the motifs it responds to (plus noise).</p>',
        table(
            [
                'organism',
                'FASTA',
                'chromosomes (bp)',
                'planted motifs',
                'targets',
                'track ← motifs',
            ],
            rows,
        ),
        _files(out_dir, 'genome'),
    ]
  if 'data' in r:
    rows = [
        (
            o,
            link(out_dir, _rel(out_dir, d['path'])),
            d['records']['train'],
            d['records']['valid'],
            d['records']['test'],
            settings['sequence_length'],
        )
        for o, d in r['data'].items()
    ]
    parts += [
        '<h2>2. Basenji2 data sets</h2>',
        '<p>statistics.json, sequences.bed, targets.txt and ZLIB TFRecords; train on '
        'chr1–chr2, validation on chr3, test on chr4 (held out from training).</p>',
        table(['organism', 'folder', 'train', 'valid', 'test', 'bp/record'], rows),
        _files(out_dir, 'data'),
    ]
  if 'train' in r:
    t = r['train']
    rows = [(v['step'], v['head'], v['pearson_r'], v['r2']) for v in t['validation']]
    parts += [
        '<h2>3. Training</h2>',
        f'<p>Preset <code>tiny</code> {_e(_model_summary(t["model_config"]))}; '
        f'{t["steps"]} steps alternating human and mouse batches, strategy '
        f'{_e(t["strategy"])}; best validation step {t["best_step"]} (mean Pearson R '
        f'{_number(t["best_score"])}).</p>',
        table(['step', 'head', 'validation Pearson R', 'validation R²'], rows),
        _files(out_dir, 'train'),
    ]
  if 'export' in r:
    x = r['export']
    parts += [
        '<h2>4. TF-Hub export</h2>',
        f'<p>{link(out_dir, _rel(out_dir, x["path"]))}: '
        f'<code>hub.load(path).model.predict_on_batch(x)</code> takes x '
        f'[B, {x["sequence_length"]:,}, 4] and centre-crops to the '
        f'{x["model_sequence_length"]:,} '
        f"bp the network sees (like DeepMind's module: 393,216 → 196,608); output "
        f'{x["output_length"]} bins × {_e(x["heads"])}; {x["parameters"]:,} parameters.</p>',
        _files(out_dir, 'export'),
    ]
  if evaluation:
    parts += [
        '<h2>5. Evaluation on the held-out chromosome</h2>',
        '<p>Pearson R per track over all (sequence, bin) pairs of the test subset. '
        'Baseline: the same predictions against targets permuted over (sequence, bin). '
        'Tracks driven by the GC-rich CTCF and SP1 motifs are learned first: the random '
        'DNA hardly ever comes close to them, so a rough detector suffices. Tracks driven by '
        'AP1 and CREB take longer: near matches (1–2 mismatches) of these motifs occur by '
        'chance several times as often as the planted sites, so the network has to learn '
        'them exactly.</p>',
    ]
    for organism in ('human', 'mouse'):
      if organism in evaluation:
        e = evaluation[organism]
        rows = [
            (i, label, p, s)
            for i, (label, p, s) in enumerate(
                zip(e['labels'], e['pearson_r'], e['shuffled_pearson_r'])
            )
        ]
        parts += [
            f'<h3>{organism} ({e["sequences"]} sequences × {e["bins"]} bins; '
            f'{link(out_dir, _rel(out_dir, e["tsv"]), "TSV")})</h3>',
            table(['track', 'description', 'Pearson R', 'shuffled baseline'], rows),
        ]
    parts += [image(out_dir, _rel(out_dir, evaluation['plot']), 'Pearson per track')]
  for number, name, title, text in (
      (
          6,
          'predict',
          'Prediction of a region',
          'Predicted tracks of a test-chromosome region, from the exported SavedModel.',
      ),
      (
          7,
          'attribute',
          'Contribution scores',
          'Gradient × input of track 0 at its strongest predicted peak.',
      ),
  ):
    if name in r:
      s = r[name]
      parts += [
          f'<h2>{number}. {title}</h2>',
          f'<p>{_e(text)} Command: <code>{_e(s["command"])}</code></p>',
      ]
      if name == 'attribute':
        parts += [
            f'<p>{s["top_bases"]} top-scoring bases: {s["top_in_motifs"]:.0%} inside '
            f'planted motifs, which cover {s["motif_base_rate"]:.1%} of the input '
            f'({s["enrichment"]:.1f}× enrichment).</p>'
        ]
      parts += [image(out_dir, _rel(out_dir, p)) for p in s['plots']]
      parts += [_files(out_dir, name)]
  if variants:
    v = variants
    sad_hit, sad_miss, sad_ratio, sad_stat = _sad_summary(v)
    rows = [
        (t['id'], t['pos'], f'{t["ref"]}>{t["alt"]}', t['variant_class'], t['track'], t['sad'])
        for t in v['top']
    ]
    parts += [
        '<h2>8. Variant effects</h2>',
        f'<p>{v["variants"]} SNVs on the held-out chromosome '
        f'({link(out_dir, _rel(out_dir, v["vcf"]), "VCF")}): half destroy a planted motif '
        '(central base changed), half lie ≥ 256 bp from every motif. Scores: '
        f'{link(out_dir, _rel(out_dir, v["sad_h5"]), "sad.h5")} (SAD, SAR per track, '
        'basenji layout)'
        + (f', {link(out_dir, _rel(out_dir, v["tsv"]), "TSV")}' if v.get('tsv') else '')
        + f'; z-score/PCA transform {link(out_dir, _rel(out_dir, v["transform"]), "npz")}. '
        f'Command: <code>{_e(v["command"])}</code></p>',
        f'<p>{sad_stat.capitalize()} of the largest |SAD| over tracks (the bars of the '
        f'plot): <b>{sad_hit:.4g}</b> for motif-destroying variants vs <b>{sad_miss:.4g}</b> '
        f'for variants far from motifs ({sad_ratio:.1f}×); AUROC of |SAD| separating them: '
        f'{v["auroc"]:.2f}.</p>',
        '<h3>Top variant effects</h3>',
        table(['variant', 'position', 'change', 'class', 'track', 'SAD'], rows, digits=4),
        image(out_dir, _rel(out_dir, v['plot'])),
        _files(out_dir, 'variants'),
    ]
  if r.get('genes'):
    parts += _genes_section(out_dir, r['genes'])
  if r.get('motifs'):
    parts += _motifs_section(out_dir, r['motifs'])
  if r.get('haplotypes'):
    parts += _haplotypes_section(out_dir, r['haplotypes'])
  parts += [
      '<h2>Next</h2><p>The notebooks in <code>colab/</code> run on these files: '
      '<code>enformer-usage.ipynb</code> (predictions, contribution scores, variant effects) '
      'and <code>enformer-training.ipynb</code> (training on human and mouse, evaluation, '
      'checkpoint vs TF-Hub export).</p>',
      '</body></html>',
  ]
  path = out_dir / 'index.html'
  path.write_text('\n'.join(parts), encoding='utf-8')
  return path


def _genes_section(out_dir: pathlib.Path, g: Mapping[str, Any]) -> List[str]:
  """The genes step: score-genes of the variants and predict --gtf (`enformer.demo.genes`)."""
  rows = [
      (
          t['variant'],
          t['gene_name'],
          t['tss_distance'],
          t['track'],
          t['sed'],
          t['log_sed'],
          t['quantile'],
      )
      for t in g['top']
  ]
  pearson = ', '.join(f'{v:.2f}' for v in g['expression_pearson'])
  return [
      '<h2>Genes</h2>',
      f'<p>{g["genes"]} genes on planted motifs of the held-out chromosome '
      f'({link(out_dir, _rel(out_dir, g["gtf"]), "GTF")}; {g["multi_tss_genes"]} with two TSSs, '
      f'{g["minus_strand_genes"]} on the minus strand). <code>score-genes</code> of the variants: '
      f'{g["pairs"]} variant–gene pairs ({g["variants_with_genes"]} variants reach a TSS) in '
      f'{link(out_dir, _rel(out_dir, g["sed_h5"]), "sed.h5")} (Borzoi\'s layout) and '
      f'{link(out_dir, _rel(out_dir, g["sed_tsv"]), "TSV")}; quantiles against the '
      f'far-from-motif variants ({link(out_dir, _rel(out_dir, g["background"]), "npz")}): the '
      f'strongest motif-destroying variant ranks at <b>{g["hit_top_quantile"]:.3f}</b>. Median '
      f'max-track |SED|: {g["hit_median_max_abs_sed"]:.4g} (motif-destroying) vs '
      f'{g["miss_median_max_abs_sed"]:.4g} (far from motifs).</p>',
      '<h3>Top variant–gene pairs</h3>',
      table(
          ['variant', 'gene', 'distance to TSS', 'track', 'SED', 'logSED', 'quantile'],
          rows,
          digits=4,
      ),
      image(out_dir, _rel(out_dir, g['sed_plot'])),
      f"<p><code>predict --gtf</code>: expression at each gene's TSSs "
      f'({link(out_dir, _rel(out_dir, g["expression_dir"]), "expression.h5 / .tsv / .h5ad")}); '
      f'Pearson r of log(1 + x), predicted vs observed, per track: {pearson}.</p>',
      image(out_dir, _rel(out_dir, g['expression_plot'])),
      '<p>Commands: ' + ''.join(f'<br><code>{_e(c)}</code>' for c in g['commands']) + '</p>',
      _files(out_dir, 'genes'),
  ]


def _motifs_section(out_dir: pathlib.Path, m: Mapping[str, Any]) -> List[str]:
  """The motifs step: TF-MoDISco patterns and TOMTOM matches (`enformer.demo.motifs`)."""
  rows = [
      (
          p['name'],
          p['num_seqlets'],
          p['consensus'],
          ', '.join(p['planted']) or '-',
          f'{p["match_id"]} {p["match_name"]}',
          p['q_value'],
      )
      for p in m['patterns']
  ]
  recovered = ', '.join(
      f'{name} ({"yes" if found else "no"})' for name, found in m['recovered'].items()
  )
  return [
      '<h2>Motifs</h2>',
      f'<p>Gradient contributions of the sum of human tracks {m["tracks"][0]}-{m["tracks"][-1]} '
      f'around {m["regions"]} planted sites of {", ".join(m["chroms"])} ({m["window"]} bp each; '
      f'{m["regions_per_second"]:.1f} regions/s), TF-MoDISco (modisco-lite) patterns of them and '
      'their best TOMTOM match in JASPAR CORE vertebrates. Planted motifs found as a pattern '
      f'with a significant match (q &lt; 0.05): {recovered}. Full table: '
      f'{link(out_dir, _rel(out_dir, m["table"]), "motifs.tsv")}; '
      f'{link(out_dir, _rel(out_dir, m["report"]), "report.html")}. '
      f'Command: <code>{_e(m["command"])}</code></p>',
      table(
          ['pattern', 'seqlets', 'consensus', 'planted motif', 'best match', 'q'], rows, digits=4
      ),
      *[image(out_dir, _rel(out_dir, p['logo']), p['name']) for p in m['patterns']],
      _files(out_dir, 'motifs'),
  ]


def _haplotypes_section(out_dir: pathlib.Path, h: Mapping[str, Any]) -> List[str]:
  """The personal-genomes step: predict-haplotypes on a phased VCF (`enformer.demo.haplotypes`)."""
  samples = [name for name, _ in h['samples']]  # [name, genotype] pairs, in VCF order.
  rows = [
      (g['gene_name'], g['motif'] or 'none (control)', *[g[s] for s in samples]) for g in h['genes']
  ]
  genotypes = ', '.join(f'{name} ({gt})' for name, gt in h['samples'])
  return [
      '<h2>Personal genomes</h2>',
      f'<p>A phased VCF ({link(out_dir, _rel(out_dir, h["vcf"]), "phased.vcf.gz")}) of the '
      f'{h["variants"]} motif-destroying SNVs with four samples: {_e(genotypes)}. '
      '<code>predict-haplotypes --gtf</code> predicts both haplotypes of every sample at genes '
      'whose TSS is one of these sites and at control genes without a variant in their window: '
      f'{h["haplotypes"]} haplotype windows, {h["distinct"]} distinct, '
      f'{h["full_pass_equivalents"]:.2f} full-pass equivalents. Output: '
      f'{link(out_dir, _rel(out_dir, h["h5ad"]), "haplotypes.h5ad")} (obs = sample × haplotype '
      f'1, 2 and the diploid mean; var = gene × track) and '
      f'{link(out_dir, _rel(out_dir, h["tsv"]), "TSV")}. Expression at the TSSs on '
      f'{_e(h["track"])} ({_e(h["track_description"])}), diploid mean:</p>',
      table(['gene', 'motif at its TSS', *samples], rows, digits=4),
      image(out_dir, _rel(out_dir, h['heatmap']), 'samples × genes'),
      f'<p>Command: <code>{_e(h["command"])}</code></p>',
      _files(out_dir, 'haplotypes'),
  ]


def _sad_summary(variants: Mapping[str, Any]) -> Tuple[float, float, float, str]:
  """(hit, miss, ratio, 'median') of the largest |SAD| per variant ('mean' for older runs)."""
  if 'hit_median_abs_sad' in variants:
    return (
        variants['hit_median_abs_sad'],
        variants['miss_median_abs_sad'],
        variants['median_ratio'],
        'median',
    )
  return (variants['hit_mean_abs_sad'], variants['miss_mean_abs_sad'], variants['ratio'], 'mean')


def key_numbers(results: Mapping[str, Mapping[str, Any]]) -> List[str]:
  """The demo's key numbers as console lines, from its step results (name → results)."""
  lines = []
  evaluation = results.get('evaluate', {})
  for organism in ('human', 'mouse'):
    if organism in evaluation:
      e = evaluation[organism]
      lines.append(
          f'{organism}: mean test Pearson R {e["mean_pearson_r"]:.3f} (per track '
          + ', '.join(f'{v:.2f}' for v in e['pearson_r'])
          + f') vs shuffled-label baseline {e["mean_shuffled_pearson_r"]:.3f}'
      )
  attribution = results.get('attribute', {})
  if attribution:
    lines.append(
        f'gradient × input: top bases {attribution["top_in_motifs"]:.0%} inside planted '
        f'motifs vs {attribution["motif_base_rate"]:.1%} of all bases '
        f'({attribution["enrichment"]:.1f}× enrichment)'
    )
  variants = results.get('variants', {})
  if variants:
    hit, miss, ratio, stat = _sad_summary(variants)
    lines.append(
        f'variants: {stat} max-track |SAD| {hit:.3g} (motif-destroying) vs {miss:.3g} '
        f'(far from motifs), {ratio:.0f}×; AUROC {variants["auroc"]:.2f}'
    )
  genes = results.get('genes', {})
  if genes:
    lines.append(
        f'genes: {genes["pairs"]} variant-gene pairs, top motif-destroying variant at '
        f'quantile {genes["hit_top_quantile"]:.3f}; expression r per track '
        + ', '.join(f'{v:.2f}' for v in genes['expression_pearson'])
    )
  found = results.get('motifs', {})
  if found:
    lines.append(
        f'motifs: {len(found["patterns"])} MoDISco patterns; planted motifs found '
        + ', '.join(
            f'{name} {"yes" if hits else "no"}' for name, hits in found['recovered'].items()
        )
    )
  haplotypes = results.get('haplotypes', {})
  if haplotypes:
    lines.append(
        f'personal genomes: {len(haplotypes["samples"])} samples x '
        f'{len(haplotypes["genes"])} genes, {haplotypes["distinct"]} distinct of '
        f'{haplotypes["haplotypes"]} haplotype windows; heat map of '
        f'{haplotypes["track"]}'
    )
  return lines


def _model_summary(config: Mapping[str, Any]) -> str:
  return (
      f'({config.get("channels")} channels, {config.get("num_transformer_layers")} transformer '
      f'layer(s), {config.get("num_heads")} attention heads, {config.get("pooling_type")} '
      f'pooling, heads {config.get("heads")})'
  )
