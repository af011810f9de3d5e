"""Which layers each technique reads, for every model the course offers: one table, one lookup.

The choices are facts about a network (where its classifier reads, which stage responds
to object parts, where Gatys et al. matched VGG-19), so they live here once rather than
in each technique or notebook. Names are layer names relative to the wrapped network
(`vizlib.hooks`); a role holds one layer or several, shallow to deep.

    layer_for(model, "gradient_ascent")   # "features.bn5" on the course model
    layers_for(model, "inversion")        # a list, shallow to deep

`model` is a VizModel or a model name. A model or role without an entry is an error
naming what the table has; every technique still takes explicit layer names.
"""

# What each role is for, and which notebook uses it.
ROLES = {
    "features": "02 neighbours, 03 embedding: the feature vector the final classifier reads",
    "patches": "04 patches: an early layer and one in the middle",
    "gradient_ascent": "08 gradient ascent: a late stage whose channels respond to object parts",
    "inversion": "10 inversion: layers to reconstruct from, shallow to deep",
    "deepdream": "11 DeepDream: two middle layers to amplify",
    "texture": "13 Gram textures: the layers whose Gram matrices are matched",
    "content": "14 style transfer: the layer whose features are kept",
    "style": "14 style transfer: the layers whose Gram matrices are matched",
    "grad_cam": "15 Grad-CAM, 17 which map to trust: the last convolutional block",
    "cam_depths": "15 Grad-CAM: four depths, shallow to deep, for the resolution-localisation picture",
    "feature_depths": "18 feature visualisation: three depths whose channels are drawn (before their ReLU)",
    "diversity": "18 feature visualisation: where the spread of a batch is measured, the channel's layer, "
                 "and the layer of the diversity term (after the channel's ReLU)",
    "dissection": "19 network dissection: the convolutional stages to dissect, shallow to deep, ending at the last",
}

LAYERS = {
    "course": {
        "features": "classifier.relu",                          # 128: fc1 + ReLU, the input of fc2
        "patches": ("features.relu2", "features.relu3"),
        "gradient_ascent": "features.bn5",      # before the ReLU: a unit silent on the start image has a gradient
        "inversion": ("features.relu1", "features.relu2", "features.relu3", "features.relu5", "classifier.relu"),
        "deepdream": ("features.relu4", "features.relu5"),
        "texture": ("features.relu1", "features.relu2", "features.relu3", "features.relu4"),
        "content": "features.relu2",
        # as its texture layers; notebook 14 shows that a random filter bank carries more of a photograph's style
        "style": ("features.relu1", "features.relu2", "features.relu3", "features.relu4"),
        "grad_cam": "features.relu5",
        "cam_depths": ("features.relu2", "features.relu3", "features.relu4", "features.relu5"),
        "feature_depths": ("features.bn2", "features.bn3", "features.bn5"),
        "diversity": ("features.relu3", "features.bn4", "features.relu4"),
        "dissection": ("features.relu1", "features.relu2", "features.relu3", "features.relu4", "features.relu5"),
    },
    "efficientnet_lite0": {
        # Stage outputs are the blocks' linear bottlenecks (no ReLU6), at 112, 56, 28, 14, 14, 7, 7 px
        "features": "classifier.flatten",   # 1280: the pooled head, the input of fc
        "patches": ("features.stage2", "features.stage3"),     # fields of 19 and 67 px
        "gradient_ascent": "features.stage6",
        # before ReLU6 (notebook 10): in 150 Adam steps the head matched to 12% relative error before it, 90%
        # after it (a unit off in the candidate but on in the target gets no gradient); block outputs 19-29%.
        # The head's match is colour noise to the eye; stage 6's widened layer (7x7) keeps outlines: 14%
        "inversion": ("features.stem.relu", "features.stage3.0.expand_bn", "features.stage6.0.expand_bn"),
        "deepdream": ("features.stage3", "features.stage5"),
        "texture": ("features.stem.relu", "features.stage1", "features.stage2", "features.stage3",
                    "features.stage4"),
        "content": "features.stage3",
        "style": ("features.stem.relu", "features.stage1", "features.stage2", "features.stage3", "features.stage4"),
        "grad_cam": "features.head.relu",   # 1280 channels, 7x7 at 224 px
        "cam_depths": ("features.stage3", "features.stage4", "features.stage6", "features.head.relu"),
        "feature_depths": ("features.stage3", "features.stage5", "features.stage6"),
        "diversity": ("features.stage4", "features.stage5.2.expand_bn", "features.stage5.2.expand_relu"),
        "dissection": ("features.stem.relu", "features.stage2", "features.stage4", "features.stage6",
                       "features.head.relu"),
    },
    "squeezenet1_1": {
        "features": "features",         # 512 channels of the last Fire module, before the 1x1 classifier conv
        "patches": ("features.4", "features.7"),
        "gradient_ascent": "features.12",
        "inversion": ("features.1", "features.6.expand1x1_activation", "features.10.expand1x1_activation",
                      "classifier.2"),
        "deepdream": ("features.6.expand1x1_activation", "features.10.expand1x1_activation"),
        # CS231n's style transfer on SqueezeNet: content at features.3, style at features 1, 4, 6 and 7
        "texture": ("features.1", "features.4", "features.6", "features.7"),
        "content": "features.3",
        "style": ("features.1", "features.4", "features.6", "features.7"),
        "grad_cam": "features.12",      # the last Fire module, 13x13 at 224 px
        "cam_depths": ("features.4", "features.7", "features.10", "features.12"),
        "feature_depths": ("features.4.expand3x3", "features.7.expand3x3", "features.12.expand3x3"),
        "diversity": ("features.7", "features.10.expand3x3", "features.10"),
        "dissection": ("features.1", "features.4", "features.7", "features.10", "features.12"),
    },
    "alexnet": {
        "features": "classifier.5",     # 4096: fc7 + ReLU, as in Krizhevsky et al. 2012
        "patches": ("features.4", "features.7"),
        "gradient_ascent": "features.10",
        "inversion": ("features.1", "features.7", "features.11", "classifier.5"),
        "deepdream": ("features.7", "features.11"),
        "texture": ("features.1", "features.4", "features.7", "features.9"),     # relu1 ... relu4
        "content": "features.7",        # relu3
        "style": ("features.1", "features.4", "features.7", "features.9"),
        "grad_cam": "features.11",      # the ReLU after the last convolution, 13x13
        "cam_depths": ("features.4", "features.7", "features.9", "features.11"),
        "feature_depths": ("features.3", "features.6", "features.10"),
        "diversity": ("features.7", "features.8", "features.9"),
        "dissection": ("features.1", "features.4", "features.7", "features.9", "features.11"),   # the conv ReLUs
    },
    "vgg16": {
        "features": "classifier.4",     # 4096: the second fully connected layer + ReLU
        "patches": ("features.8", "features.15"),
        "gradient_ascent": "features.28",
        "inversion": ("features.1", "features.13", "features.22", "classifier.4"),
        "deepdream": ("features.13", "features.22"),
        # Gatys et al.'s choices at the same depths as VGG-19's below: conv1_1 and pool1-pool4;
        # content at relu4_2, style at relu1_1 ... relu5_1
        "texture": ("features.1", "features.4", "features.9", "features.16", "features.23"),
        "content": "features.20",
        "style": ("features.1", "features.6", "features.11", "features.18", "features.25"),
        "grad_cam": "features.29",      # relu5_3
        "cam_depths": ("features.8", "features.15", "features.22", "features.29"),
        "feature_depths": ("features.10", "features.19", "features.28"),
        "diversity": ("features.15", "features.21", "features.22"),
        "dissection": ("features.3", "features.8", "features.15", "features.22", "features.29"),  # relu1_2 ... relu5_3
    },
    "vgg19": {
        "features": "classifier.4",
        "patches": ("features.8", "features.17"),
        "gradient_ascent": "features.34",
        "inversion": ("features.1", "features.15", "features.26", "classifier.4"),
        "deepdream": ("features.15", "features.26"),
        # Gatys et al.: textures at conv1_1 and pool1-pool4 (here the ReLU after conv1_1);
        # style transfer with content at relu4_2 and style at relu1_1 ... relu5_1.
        "texture": ("features.1", "features.4", "features.9", "features.18", "features.27"),
        "content": "features.22",
        "style": ("features.1", "features.6", "features.11", "features.20", "features.29"),
        "grad_cam": "features.35",      # relu5_4
        "cam_depths": ("features.8", "features.17", "features.26", "features.35"),
        "feature_depths": ("features.10", "features.21", "features.34"),
        "diversity": ("features.17", "features.25", "features.26"),
        "dissection": ("features.3", "features.8", "features.17", "features.26", "features.35"),  # relu1_2 ... relu5_4
    },
    "resnet18": {
        "features": "avgpool",          # 512: the globally pooled features before fc
        "patches": ("layer1", "layer2"),
        "gradient_ascent": "layer4",
        # A block's `relu` runs twice (after bn1, then after the residual sum), so the rows name the block,
        # whose output is its second ReLU's: the stem's ReLU, then blocks 3, 5 and 8 of 8, evenly spread.
        "inversion": ("relu", "layer2.0", "layer3.0", "layer4.1"),
        "deepdream": ("layer2.0", "layer3.0"),
        "texture": ("relu", "layer1", "layer2", "layer3"),
        "content": "layer2",
        "style": ("relu", "layer1", "layer2", "layer3"),
        "grad_cam": "layer4",
        "cam_depths": ("layer1", "layer2", "layer3", "layer4"),
        "feature_depths": ("layer1.1.bn2", "layer2.1.bn2", "layer4.1.bn2"),
        "diversity": ("layer2", "layer3.1.bn2", "layer3"),
        "dissection": ("relu", "layer1", "layer2", "layer3", "layer4"),
    },
}

# How the "features" layer's output becomes one vector per image: "flatten" keeps every value,
# "mean" averages each channel over its positions (SqueezeNet's features are 13x13 maps).
FEATURE_POOLING = {"course": "flatten", "efficientnet_lite0": "flatten", "squeezenet1_1": "mean", "alexnet": "flatten",
                   "vgg16": "flatten", "vgg19": "flatten", "resnet18": "flatten"}


def layers_for(model, role):
    """The layers `role` uses on `model` (a VizModel or a model name), as a list, shallow to deep."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    name = model if isinstance(model, str) else getattr(model, "name", None)
    if name not in LAYERS:
        raise ValueError(f"no default {role} layers for model {name!r}: the table has the models "
                         f"{', '.join(LAYERS)}; name the layers yourself")
    roles = LAYERS[name]
    if role not in roles:
        raise ValueError(f"no default {role} layers for model {name!r}: it has the roles {', '.join(roles)}; "
                         "name the layers yourself")
    value = roles[role]
    return [value] if isinstance(value, str) else list(value)


def layer_for(model, role):
    """The one layer `role` uses on `model` (a VizModel or a model name)."""
    layers = layers_for(model, role)
    if len(layers) != 1:
        raise ValueError(f"the {role} role has {len(layers)} layers ({', '.join(layers)}): use layers_for")
    return layers[0]
