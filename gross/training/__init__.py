"""Training and fine-tuning (Sec. 4.4): recipes, the training loop, many networks at once, DDP.

=========================  ==============================================================
:mod:`.recipes`            the paper's schedules (base, GroSS fine-tune, individual fine-tune)
:mod:`.loop`               train / fine-tune one network (GroSS: a configuration per step)
:mod:`.batched`            several networks trained at once (vmap / packed)
:mod:`.distributed`        torchrun / DDP training and sharded evaluation (ImageNet, Table 4)
=========================  ==============================================================
"""
