"""``fairseq-train`` with ``--ddp-backend pytorch_ddp`` on CPU (a test helper).

fairseq wraps the model in torch's DistributedDataParallel with ``device_ids=[device_id]``, which
torch refuses for a CPU module; this drops those two arguments for a CPU module and changes nothing
else, so the tests exercise torch's real DDP reducer (gloo) on the CPU machine.
Usage: ``python tests/fairseq_cpu_ddp.py <fairseq-train arguments>``.
"""

import sys

import fairseq.models.distributed_fairseq_model as distributed_fairseq_model
import torch.nn.parallel


class CpuDistributedDataParallel(torch.nn.parallel.DistributedDataParallel):
    def __init__(self, module, device_ids=None, output_device=None, **kwargs):
        if next(module.parameters()).device.type == "cpu":
            device_ids = output_device = None
        super().__init__(module, device_ids=device_ids, output_device=output_device, **kwargs)


if __name__ == "__main__":
    distributed_fairseq_model.DistributedDataParallel = CpuDistributedDataParallel
    from fairseq_cli.train import cli_main

    sys.argv[0] = "fairseq-train"
    cli_main()
