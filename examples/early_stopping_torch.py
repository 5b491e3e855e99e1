"""Early stopping of a small search by learning curves: a plain PyTorch loop with `pfn.curves.EarlyStopping`.

Eight MLPs with different learning rates and widths train on the digits table, one after the
other. After every epoch the hook asks LC-PFN how likely the run is to end (at the last epoch)
with a better validation accuracy than the best finished run, and stops it when that chance
drops below 5%. The loop prints how many epochs each run used and why it stopped.

    python examples/early_stopping_torch.py                          # the shipped model lcpfn
    python examples/early_stopping_torch.py --quick --model runs/lcpfn
"""

from __future__ import annotations

import argparse

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from pfn.curves import EarlyStopping


def digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.3, stratify=y, random_state=0)
    scaler = StandardScaler().fit(x_train)
    as_x = lambda a: torch.as_tensor(scaler.transform(a), dtype=torch.float32)  # noqa: E731
    return as_x(x_train), torch.as_tensor(y_train), as_x(x_val), torch.as_tensor(y_val)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="four runs of 12 epochs (what CI runs)")
    parser.add_argument("--model", default="lcpfn", help="checkpoint folder or shipped name (default lcpfn)")
    args = parser.parse_args()
    torch.manual_seed(0)
    x_train, y_train, x_val, y_val = digits()
    epochs = 12 if args.quick else 40
    settings = [(lr, width) for lr in (0.3, 0.03, 0.003, 0.0003) for width in (16, 64)][: 4 if args.quick else 8]

    hook = EarlyStopping(horizon=epochs, direction="maximize", bounds=(0.0, 1.0), model=args.model)
    used = 0
    for lr, width in settings:
        net = torch.nn.Sequential(torch.nn.Linear(64, width), torch.nn.ReLU(), torch.nn.Linear(width, 10))
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
        hook.new_run()
        for epoch in range(1, epochs + 1):
            for idx in torch.randperm(len(y_train)).split(64):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(net(x_train[idx]), y_train[idx]).backward()
                opt.step()
            with torch.no_grad():
                accuracy = float((net(x_val).argmax(1) == y_val).float().mean())
            used += 1
            if hook.report(epoch, accuracy):
                break
        status = f"stopped: {hook.reason}" if hook.reason else "ran to the end"
        print(f"lr={lr:<6} width={width:<3} epochs {epoch:>2}/{epochs}  val accuracy {accuracy:.3f}  {status}")
    print(f"best final accuracy {hook.best:.3f}; {used} of {len(settings) * epochs} epochs trained "
          f"({len(settings) * epochs / used:.1f}x fewer)")


if __name__ == "__main__":
    main()
