"""Enformer on TensorFlow 2 / Sonnet 2: model, inference, variants, attribution, data, training.

Names are imported lazily, so `import enformer` (and `enformer --help`) does not load TensorFlow
until a name that needs it is used.
"""

from enformer.lazy import lazy_attributes

__version__ = '0.1.0'

# Public name → module that defines it.
_EXPORTS = {
    'Enformer': 'enformer.enformer',
    'SEQUENCE_LENGTH': 'enformer.enformer',
    'BIN_SIZE': 'enformer.enformer',
    'TARGET_LENGTH': 'enformer.enformer',
    'HEADS': 'enformer.enformer',
    # The rest of DeepMind's `enformer` module, as its notebooks use it (`enformer.gelu`, ...);
    # `one_hot_encode` is the package's own (same output for ACGTN strings).
    'TargetLengthCrop1D': 'enformer.enformer',
    'Sequential': 'enformer.enformer',
    'pooling_module': 'enformer.enformer',
    'SoftmaxPooling1D': 'enformer.enformer',
    'Residual': 'enformer.enformer',
    'gelu': 'enformer.enformer',
    'exponential_linspace_int': 'enformer.enformer',
    'accepts_is_training': 'enformer.enformer',
    'build_model': 'enformer.models',
    'load_pretrained': 'enformer.training.finetune',
    'fine_tune': 'enformer.training.finetune',
    'fit_ridge': 'enformer.evaluation.ridge',
    'one_hot_encode': 'enformer.sequence',
    'one_hot_encode_batch': 'enformer.sequence',
    'reverse_complement': 'enformer.sequence',
    'reverse_complement_one_hot': 'enformer.sequence',
    'get_dataset': 'enformer.data.basenji',
    'get_zipped_dataset': 'enformer.data.basenji',
    'DatasetSettings': 'enformer.data.basenji',
    'Augmentation': 'enformer.data.augment',
    'BasenjiWriter': 'enformer.data.write',
    'write_dataset': 'enformer.data.write',
    'make_synthetic_genome': 'enformer.data.synthetic',
    'make_synthetic_dataset': 'enformer.data.synthetic',
    'load_model': 'enformer.inference.loading',
    'export_hub_module': 'enformer.inference.export',
    'Predictor': 'enformer.inference.predictor',
    'compile_forward': 'enformer.inference.fast',
    'VariantScorer': 'enformer.variants',
    'ScoreTransform': 'enformer.variants',
    'score_vcf': 'enformer.variants',
    'ScoringSettings': 'enformer.variants',
    'contribution_input_grad': 'enformer.interpret.gradients',
    'target_mask': 'enformer.interpret.gradients',
    'in_silico_mutagenesis': 'enformer.interpret.ism',
    'attribute_to_files': 'enformer.interpret.workflow',
    'predict_to_files': 'enformer.inference.regions',
    'PredictionOutputs': 'enformer.inference.regions',
    'train': 'enformer.training.loop',
    'TrainConfig': 'enformer.training.config',
    'run_demo': 'enformer.demo.run',
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS, globals(), submodules=True)
