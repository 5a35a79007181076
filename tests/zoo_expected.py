"""Expected trainable parameter counts and output shapes for every spec in specs/.

Each count is worked out by hand below (weights + biases, layer by layer), so a
test comparing them with the compiler's own count checks two independent sums.
Rules used:
  dense      in * units + units                      (bias: true)
  conv       filters * in_ch / groups * prod(kernel) + filters (bias: true; no
             `+ filters` with `bias: false`)
  batchnorm  2 * C   (weight, bias; running stats are buffers, not trainable)
  layernorm  2 * D   (D = size of the last axis)
Pools, activations, dropout, flatten, reshape, permute, add, mul, concat,
identity and preprocess steps have no trainable parameters.

Output shapes leave the batch axis out and are keyed by output name; a spec
without `outputs` has one output, `output` (its last layer).
"""

EXPECTED_PARAMS = {
    # input 1x28x28 -> flatten 784
    # dense 100: 784*100 + 100 = 78,500
    # dense 10:  100*10 + 10   =  1,010
    "nielsen_shallow.yaml": 79_510,  # 78,500 + 1,010
    # conv 20 5x5 on 1 ch: 20*1*25 + 20 = 520            -> 20x24x24, maxpool 2 -> 20x12x12
    # flatten 20*12*12 = 2880; dense 100: 2880*100 + 100 = 288,100
    # dense 10: 100*10 + 10 = 1,010
    "nielsen_conv1.yaml": 289_630,  # 520 + 288,100 + 1,010
    # conv 20 5x5 on 1 ch:  20*1*25 + 20  =    520        -> 20x24x24 -> pool 20x12x12
    # conv 40 5x5 on 20 ch: 40*20*25 + 40 = 20,040        -> 40x8x8   -> pool 40x4x4
    # flatten 640; dense 100: 640*100 + 100 = 64,100; dense 10: 1,010
    "nielsen_conv2.yaml": 85_670,  # 520 + 20,040 + 64,100 + 1,010
    # same layers as nielsen_conv2 with ReLU (filters 20 and 20*2 = 40 from params)
    "nielsen_relu.yaml": 85_670,  # 520 + 20,040 + 64,100 + 1,010
    # nielsen_relu's layers (extends it; `expand` is training data, not parameters)
    "nielsen_expanded.yaml": 85_670,  # 520 + 20,040 + 64,100 + 1,010
    # nielsen_relu's layers plus a second dense 100 on 100: 100*100 + 100 = 10,100
    "nielsen_extra_fc.yaml": 95_770,  # 520 + 20,040 + 64,100 + 10,100 + 1,010
    # conv 20 5x5: 520; conv 40 5x5 on 20: 20,040; flatten 40*4*4 = 640
    # dense 1000: 640*1000 + 1000   =   641,000
    # dense 1000: 1000*1000 + 1000  = 1,001,000
    # dense 10:   1000*10 + 10      =    10,010
    "nielsen_final.yaml": 1_672_570,  # 520 + 20,040 + 641,000 + 1,001,000 + 10,010
    # extends nielsen_final; `training.ensemble` trains five copies, the spec's network is one of them
    "nielsen_ensemble.yaml": 1_672_570,
    # conv_bn_relu c (3x3 valid, bias: false) = c*in*9 conv + 2*c batchnorm
    # stage1: 32*1*9 + 64   =    288 + 64  =    352 -> 32x26x26; 32*32*9 + 64 = 9,216 + 64 = 9,280 -> 32x24x24
    # maxpool 32x12x12; stage2: 64*32*9 + 128 = 18,432 + 128 = 18,560 -> 64x10x10;
    #   64*64*9 + 128 = 36,864 + 128 = 36,992 -> 64x8x8; maxpool 64x4x4, flatten 1024
    # dense 256 on 1024, bias: false: 262,144; batchnorm 2*256 = 512; dense 10 on 256: 2,560 + 10 = 2,570
    "mnist_best.yaml": 330_410,  # 352 + 9,280 + 18,560 + 36,992 + 262,144 + 512 + 2,570
    "mnist_best_ensemble.yaml": 330_410,  # mnist_best's network, five members trained from it
    # C1 conv 6 5x5 on 1:   6*1*25 + 6    =    156   -> 6x28x28 -> avgpool 6x14x14
    # C3 conv 16 5x5 on 6:  16*6*25 + 16  =  2,416   -> 16x10x10 -> avgpool 16x5x5
    # flatten 400; C5 dense 120: 400*120 + 120 = 48,120
    # F6 dense 84: 120*84 + 84 = 10,164; logits dense 10: 84*10 + 10 = 850
    "lenet5.yaml": 61_706,  # 156 + 2,416 + 48,120 + 10,164 + 850
    # lenet5 network unchanged (28x28 input resized to 32x32 in preprocess)
    "lenet5_fashion.yaml": 61_706,
    # conv_bn_relu c (3x3, bias: false) = c*in*9 conv + 2*c batchnorm; width 32
    # stage1: 32*3*9 + 64   =    864 + 64  =    928;  32*32*9 + 64   =   9,216 + 64  =   9,280
    # stage2: 64*32*9 + 128 = 18,432 + 128 = 18,560;  64*64*9 + 128  =  36,864 + 128 =  36,992
    # stage3: 128*64*9 + 256 = 73,728 + 256 = 73,984; 128*128*9 + 256 = 147,456 + 256 = 147,712
    # global_avgpool -> 128; dense 128: 128*128 + 128 = 16,512; dense 10: 128*10 + 10 = 1,290
    # convs 286,560 + batchnorms 896 + dense 17,802
    "vgg_small_bn.yaml": 305_258,  # 928 + 9,280 + 18,560 + 36,992 + 73,984 + 147,712 + 16,512 + 1,290
    # stem conv 16 3x3 on 3, no bias: 16*3*9 = 432; batchnorm 2*16 = 32
    # residual c (two 3x3 convs c->c, no bias, two batchnorms) = 2*c*c*9 + 2*2*c
    #   c=16: 2*2,304 + 64  =   4,672, x2 =   9,344
    #   c=32: 2*9,216 + 128 =  18,560, x2 =  37,120
    #   c=64: 2*36,864 + 256 = 73,984, x2 = 147,968
    # projection 1x1 no bias + batchnorm: 16->32: 512 + 64 = 576; 32->64: 2,048 + 128 = 2,176
    # global_avgpool -> 64; dense 10: 64*10 + 10 = 650
    "resnet_small.yaml": 198_298,  # 432 + 32 + 9,344 + 576 + 37,120 + 2,176 + 147,968 + 650
    # flatten 784; dense 512: 784*512 + 512 = 401,920; dense 512: 512*512 + 512 = 262,656
    # dense 10: 512*10 + 10 = 5,130
    "mlp_gcn.yaml": 669_706,  # 401,920 + 262,656 + 5,130
    # conv 16 5x5 on 1:  16*1*25 + 16  =    416   -> 16x28x28 -> avgpool 4 stride 2 -> 16x13x13
    # conv 32 4x4 on 16: 32*16*16 + 32 =  8,224   -> 32x10x10 -> avgpool 2 -> 32x5x5
    # flatten 800; dense 10: 800*10 + 10 = 8,010
    "lcn_convnet.yaml": 16_650,  # 416 + 8,224 + 8,010
    # flatten 784; dense 32: 784*32 + 32 = 25,120; dense 10: 32*10 + 10 = 330
    "tiny_mlp.yaml": 25_450,  # 25,120 + 330
    # stem conv 16 k7 on 2:     16*2*7 + 16  =   240  -> (16, 64)
    # dilated conv 24 k3 on 16: 24*16*3 + 24 = 1,176  -> (24, 64)
    # wide conv 16 k5 on 16:    16*16*5 + 16 = 1,296  -> (16, 64)
    # gate conv 1 k1 on 16:     1*16*1 + 1   =    17  -> (1, 64)
    # concat (40, 64), maxpool (40, 32), permute (32, 40)
    # layernorm D=40: 2*40 = 80; dense 64 on last axis: 40*64 + 64 = 2,624 -> (32, 64)
    # permute (64, 32), global_maxpool (64); logits dense 10: 64*10 + 10 = 650
    "conv1d_signal.yaml": 6_083,  # 240 + 1,176 + 1,296 + 17 + 80 + 2,624 + 650
    # after preprocess 3x32x32
    # conv 16 3x3 on 3:  16*3*9 + 16  =    448  -> 16x32x32 -> pool 16x16x16
    # conv 32 3x3 on 16: 32*16*9 + 32 =  4,640  -> 32x16x16 -> pool 32x8x8
    # conv 64 3x3 on 32: 64*32*9 + 64 = 18,496  -> 64x8x8 -> global_avgpool 64
    # dense 10: 64*10 + 10 = 650
    "preprocess_zoo.yaml": 24_234,  # 448 + 4,640 + 18,496 + 650
    # Sequence models. Extra rules: embedding vocab*dim; multihead_attention 3*dim*d + 3*dim (in_proj)
    # + dim*dim + dim (out_proj); additive attention dk*dq + dk*dk + dk (W_q, W_k, v; no biases);
    # lstm per layer and direction 4*H*(D_in + H) + 2*4*H (PyTorch's two biases); positional_encoding
    # learned max_len*D, sinusoidal 0.
    # embedding 12x32 = 384; conv 64 k3 on 32: 64*32*3 + 64 = 6,208; conv 64 k3 on 64: 64*64*3 + 64 = 12,352
    # query dense 64 on 64: 4,160; additive attention dq = dk = 64: 4,096 + 4,096 + 64 = 8,256
    # dense 10 on 64: 650
    "attention_task.yaml": 32_010,  # 384 + 6,208 + 12,352 + 4,160 + 8,256 + 650
    # embedding 12x32 = 384
    # lstm H=64 layer 0 (D=32), per direction 4*64*(32+64) + 512 = 25,088, x2 = 50,176
    # lstm layer 1 (D=128),     per direction 4*64*(128+64) + 512 = 49,664, x2 = 99,328
    # dense 10 on 128: 1,290
    "lstm_classifier.yaml": 151_178,  # 384 + 50,176 + 99,328 + 1,290
    # embedding 12x64 = 768; sinusoidal positions 0
    # encoder block (d 64, hidden 128): attention 3*64*64 + 192 + 64*64 + 64 = 16,640; layernorm 128;
    #   dense 128 on 64: 8,320; dense 64 on 128: 8,256; layernorm 128 -> 33,472, x2 = 66,944
    # dense 10 on 64: 650
    "transformer_text.yaml": 68_362,  # 768 + 66,944 + 650
    # patch conv 64 4x4 on 1: 64*16 + 64 = 1,088; learned positions 49*64 = 3,136
    # pre-norm block: layernorm 128 + attention 16,640 + layernorm 128 + 8,320 + 8,256 = 33,472, x3 = 100,416
    # final layernorm 128; dense 10 on 64: 650
    "vit_mnist.yaml": 105_418,  # 1,088 + 3,136 + 100,416 + 128 + 650
    # conv 16 3x3 on 1: 160 -> fractional_maxpool 1.414: floor(28/1.414) = 19
    # conv 32 3x3 on 16: 32*16*9 + 32 = 4,640 -> 13; conv 48 3x3 on 32: 48*32*9 + 48 = 13,872 -> 9
    # flatten 48*9*9 = 3,888; dense 128: 3,888*128 + 128 = 497,792 (dropconnect adds none); dense 10: 1,290
    "fmp_dropconnect.yaml": 517_754,  # 160 + 4,640 + 13,872 + 497,792 + 1,290
}

EXPECTED_OUTPUT_SHAPES = {
    "nielsen_shallow.yaml": {"output": [10]},
    "nielsen_conv1.yaml": {"output": [10]},
    "nielsen_conv2.yaml": {"output": [10]},
    "nielsen_relu.yaml": {"output": [10]},
    "nielsen_final.yaml": {"output": [10]},
    "nielsen_expanded.yaml": {"output": [10]},
    "nielsen_extra_fc.yaml": {"output": [10]},
    "nielsen_ensemble.yaml": {"output": [10]},
    "mnist_best.yaml": {"output": [10]},
    "mnist_best_ensemble.yaml": {"output": [10]},
    "lenet5.yaml": {"logits": [10]},
    "lenet5_fashion.yaml": {"output": [10]},  # `outputs: null` deletes lenet5's `logits`
    "vgg_small_bn.yaml": {"output": [10]},
    "resnet_small.yaml": {"output": [10]},
    "mlp_gcn.yaml": {"output": [10]},
    "lcn_convnet.yaml": {"output": [10]},
    "tiny_mlp.yaml": {"output": [10]},
    "conv1d_signal.yaml": {"logits": [10], "embedding": [8, 8]},
    "preprocess_zoo.yaml": {"output": [10]},
    "attention_task.yaml": {"output": [10]},
    "lstm_classifier.yaml": {"output": [10]},
    "transformer_text.yaml": {"output": [10]},
    "vit_mnist.yaml": {"logits": [10]},
    "fmp_dropconnect.yaml": {"logits": [10]},
}
