"""The networks of the paper (Sec. 4.2): the CIFAR-10 4-layer net and VGG-16, and torchvision's
ImageNet VGG-16 and ResNet-18 (:mod:`gross.models.networks`); and a CIFAR-10 ResNet-18 (notebook 07)."""

from gross.models.networks import (DEFAULT_GROUP_SIZES, INPUT_SIZE, MODELS, CifarResNet, build, four_layer_net,
                                   resnet18_cifar, resnet18_imagenet, vgg16_cifar, vgg16_imagenet)

__all__ = ["four_layer_net", "vgg16_cifar", "vgg16_imagenet", "resnet18_imagenet", "resnet18_cifar", "CifarResNet",
           "MODELS", "INPUT_SIZE", "DEFAULT_GROUP_SIZES", "build"]
