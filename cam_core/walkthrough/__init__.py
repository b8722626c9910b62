"""From pixels to prediction on any registered CNN: every stage of one photo's forward pass, and at a clicked
position its receptive field, the weighted sum with the real numbers, the activation, the pooling; at the end the
logits → softmax at a temperature. Transformers get the patch grid and one token's attention instead.

    wt = walk(model, x)                      # one forward pass, every stage kept
    wt.receptive_field(i, row, col)          # Box on the model's input, by composition (field.py)
    conv_step(wt, i, c, row, col, fold_bn=True).sum.text()
    softmax(wt.logits, temperature=2.0).top
"""
from .field import Box, Field
from .recording import (KINDS, TRANSFORMER_NOTE, Stage, Walkthrough, input_rgb, is_transformer, stage_kind,
                        walk)
from .softmax import TEMPERATURES, Softmax, softmax
from .steps import (ActivationStep, ConvStep, NormStep, PoolStep, Term, WeightedSum, activation_step, classifier,
                    conv_step, linear_step, norm_step, pooling_step)
from .tokens import TokenAttention, token_attention

__all__ = ["ActivationStep", "Box", "ConvStep", "Field", "KINDS", "NormStep", "PoolStep", "Softmax", "Stage",
           "TEMPERATURES", "TRANSFORMER_NOTE", "Term", "TokenAttention", "Walkthrough", "WeightedSum",
           "activation_step", "classifier", "conv_step", "input_rgb", "is_transformer", "linear_step", "norm_step",
           "pooling_step", "softmax", "stage_kind", "token_attention", "walk"]
