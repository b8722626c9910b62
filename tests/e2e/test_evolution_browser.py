"""The Evolution page in Debian's Chromium: upload two weight files (random EfficientNet-Lite0, 4 classes, as
safetensors) in the page's uploader, see a column per file, add the visualizations and the top patches, leave the
page through the menu and come back: the files are still there."""
from __future__ import annotations

import re

import pytest
import torch

from tests.e2e.waits import wait_idle

pytestmark = pytest.mark.browser
MAIN = '[data-testid="stMain"]'
MEAN = re.compile(r"^mean -?[\d.e+-]+ · max -?[\d.e+-]+$")


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    from safetensors.torch import save_file

    import models

    root = tmp_path_factory.mktemp("checkpoints")
    paths = []
    for i in range(2):
        torch.manual_seed(20 + i)
        net = models.SPECS["efficientnet_lite0"].build(4)
        path = root / f"epoch{i}.safetensors"
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, path)
        paths.append(str(path))
    return paths


def _captions(page) -> list[str]:
    return [t.strip() for t in page.locator(f'{MAIN} [data-testid="stImageCaption"]').all_inner_texts()]


def _wait_captions(page, pattern: str, count: int) -> None:
    page.wait_for_function(f"() => [...document.querySelectorAll('{MAIN} [data-testid=stImageCaption]')]"
                           f".filter(e => /{pattern}/.test(e.innerText)).length >= {count}", timeout=240_000)
    wait_idle(page)


def test_two_files_side_by_side_and_kept_after_leaving(page, app_url, weight_files, screenshot_dir):
    page.goto(f"{app_url}/evolution")
    main = page.locator(MAIN)
    main.get_by_text("Upload at least 2 weight files").wait_for(timeout=180_000)
    wait_idle(page)
    main.locator('input[type="file"]').set_input_files(weight_files)
    _wait_captions(page, "^mean ", 2)
    means = [c for c in _captions(page) if MEAN.match(c)]
    assert len(means) == 2 and means[0] != means[1]
    main.get_by_text("What the channel looks for in each file").click()
    _wait_captions(page, "^looks for$", 2)
    main.get_by_role("button", name=re.compile("Top patches over the 5 sample photos")).click()
    _wait_captions(page, "crop \\\\| deconvnet", 6)
    assert sum(c.endswith("(crop | deconvnet)") for c in _captions(page)) == 6  # the top 3 in each file
    main.get_by_text(re.compile("all on one colour scale")).evaluate("e => e.scrollIntoView()")  # the columns
    page.wait_for_timeout(300)
    page.screenshot(path=str(screenshot_dir / "evolution.png"), full_page=False)  # docs/screenshots/evolution.png
    page.locator('[data-testid="stSidebarNav"] a').filter(has_text="Layers").first.click()
    page.wait_for_url("**/layers**")
    wait_idle(page)
    page.locator('[data-testid="stSidebarNav"] a').filter(has_text="Evolution").first.click()
    page.wait_for_url("**/evolution**")
    _wait_captions(page, "^mean ", 2)
    assert [c for c in _captions(page) if MEAN.match(c)] == means
    assert main.get_by_text("Kept from before: epoch0.safetensors, epoch1.safetensors").count() == 1
