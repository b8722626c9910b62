"""The app never contradicts itself, in Debian's Chromium, as a person would check it:

- upload photo A, then photo B: the class menu reads B's top-1 (never A's), also after switching method;
- upload a broken file: the main area says what failed, why and what to do, and shows no old results;
- upload a photo while a long method runs: the old photo's map leaves the screen at once (not when the new one is done);
- pick a model whose weights are not here (offline): one card, no server path in the link, a way back;
- copy a link (made after an upload, or on Layers/Occlusion/Invariance/Compare) and open it in a new page;
- press the browser's Back after switching pages: the previous page comes back;
- pick an input size: the caption names it, the link and the other pages keep it;
- the sidebar has no pickers on Learn and one uploader on Batch;
- and the server log has no Streamlit widget warning after all of it.

Screenshots go to test-output/screenshots/state_*.png.
"""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from PIL import Image
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.e2e.viewport import page_at
from tests.e2e.waits import wait_idle as _wait_idle

pytestmark = pytest.mark.browser

MAIN = '[data-testid="stMain"]'
SIDEBAR = '[data-testid="stSidebar"]'


def _photo(tmp_path: Path, sample: str, name: str | None = None) -> str:
    from skimage import data

    path = tmp_path / (name or f"{sample}.png")
    Image.fromarray(getattr(data, sample)()).convert("RGB").save(path)
    return str(path)


def _open_menu(page, combobox, option):
    """Open ``combobox`` until ``option`` shows: a menu opened while the page redraws closes again, and a person
    opens it once more."""
    for _ in range(3):
        combobox.click()
        try:
            option.wait_for(timeout=10_000)
            return option
        except PlaywrightTimeout:
            _wait_idle(page)
    return option


def _wait_headline(page, pattern: str) -> str:
    """Wait until the prediction headline matches ``pattern`` (a regex), then until the run is over."""
    page.wait_for_function("p => { const h = document.querySelector('[data-testid=stMain] h3');"
                           " return h && new RegExp(p).test(h.innerText) }", arg=pattern, timeout=180_000)
    _wait_idle(page)
    return _headline(page)


def _upload(page, path: str, good: bool = True) -> None:
    """Upload ``path`` with the sidebar's uploader; wait until the app has read it (or refused it)."""
    page.locator(f'{SIDEBAR} input[type="file"]').first.set_input_files(path)
    name = Path(path).name
    seen = f"{name} — " if good else f"{name} could not be read"
    page.locator(SIDEBAR).get_by_text(seen, exact=False).last.wait_for(timeout=120_000)
    _wait_idle(page)


def _select_text(page, label: str, where: str = MAIN) -> str:
    """What a select box shows, as a person reads it ("" when it shows its "Choose an option" placeholder)."""
    return page.locator(where).get_by_role("combobox", name=label, exact=True).first.input_value().strip()


def _pick(page, label: str, option: str, where: str = MAIN, typed: str = "") -> None:
    """Open a select box, optionally type to narrow a long list (as a person would), and click ``option``."""
    page.locator(where).get_by_role("combobox", name=label, exact=True).click()
    if typed:
        page.keyboard.type(typed)
    page.get_by_role("option", name=option, exact=False).first.click()
    _wait_idle(page)


def _headline(page) -> str:
    head = page.locator(f'{MAIN} h3').first
    head.wait_for(timeout=180_000)
    return head.inner_text().strip()


def _shot(page, screenshot_dir: Path, name: str) -> None:
    page.wait_for_timeout(800)
    page.screenshot(path=str(screenshot_dir / f"state_{name}.png"), full_page=True)


def test_class_menu_follows_each_uploaded_photo(page, app_url, tmp_path, screenshot_dir):
    page.goto(app_url)
    top = _headline(page).split(" — ")[0]
    _wait_idle(page)
    assert _select_text(page, "Class").startswith(f"top-1 prediction: {top} — ")

    assert _select_text(page, "…or a sample photo", where=SIDEBAR) == "Chelsea the cat (a tabby)"
    _upload(page, _photo(tmp_path, "coffee"))
    _wait_headline(page, "^espresso — ")
    assert _select_text(page, "Class").startswith("top-1 prediction: espresso — ")
    assert _select_text(page, "…or a sample photo", where=SIDEBAR) == ""  # names no sample under an upload

    _upload(page, _photo(tmp_path, "astronaut"))
    top = _wait_headline(page, "^(?!espresso)").split(" — ")[0]
    assert _select_text(page, "Class").startswith(f"top-1 prediction: {top} — ")

    _pick(page, "Method", "Saliency")  # a method with no layer
    shown = _select_text(page, "Class")
    assert shown.startswith(f"top-1 prediction: {top} — ")  # not empty ("Choose an option")
    _shot(page, screenshot_dir, "class_after_two_uploads")

    page.locator('[data-testid="stSidebarNav"]').get_by_text("Compare", exact=True).click()
    page.get_by_role("heading", name="Compare").wait_for()
    _wait_idle(page)
    assert _select_text(page, "Class").startswith(f"top-1 prediction: {top} — ")


def test_broken_upload_replaces_the_results_with_a_card(page, app_url, tmp_path, screenshot_dir):
    page.goto(app_url)
    _headline(page)
    _wait_idle(page)
    broken = tmp_path / "holiday.jpg"
    broken.write_text("this is a text file, not a JPEG\n")
    _upload(page, str(broken), good=False)
    main = page.locator(MAIN)
    main.get_by_text("Could not read holiday.jpg").wait_for()
    assert "holiday.jpg: not an image" in main.locator('[data-testid="stAlertContentError"]').first.inner_text()
    assert main.get_by_text("What to do:", exact=False).count() == 1
    assert page.locator(f"{MAIN} h3").count() == 0  # no prediction headline (the card title is an h4)
    assert main.locator('[data-testid="stImage"]').count() == 0  # no map of the previous photo
    _shot(page, screenshot_dir, "broken_upload")

    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    _upload(page, str(empty), good=False)
    main.get_by_text("Could not read empty.png").wait_for()
    assert main.get_by_text("Could not read holiday.jpg").count() == 0

    _pick(page, "…or a sample photo", "A cup of espresso", where=SIDEBAR)
    _wait_headline(page, "^espresso — ")
    assert main.get_by_text("Could not read", exact=False).count() == 0


# Records, every 50 ms, what the main area shows below a headline: a map's "Explained class" details and
# how many images, and whether a progress bar is up. Read back with window.__seen.
_WATCH = """() => { window.__seen = []; window.__watch = setInterval(() => {
  const m = document.querySelector('[data-testid=stMain]'); const h = m && m.querySelector('h3');
  const details = Array.from(m ? m.querySelectorAll('[data-testid=stMarkdownContainer]') : [])
      .map(e => e.innerText).find(t => t.includes('Explained class')) || '';
  window.__seen.push({head: h ? h.innerText : '', details, images: m ? m.querySelectorAll('[data-testid=stImage]').length : 0,
                      progress: !!(m && m.querySelector('[data-testid=stProgress]'))}); }, 50); }"""


def test_new_photo_during_a_long_method_never_shows_the_old_map(page, app_url, tmp_path, screenshot_dir):
    """Occlusion on the cat, then a new photo: while its occlusion runs (seconds, a progress bar), the page
    shows the new photo's headline and no map or details of the cat — not even greyed out."""
    from skimage import data

    page.goto(f"{app_url}/?method=occlusion")
    page.get_by_text("Explained class: Egyptian cat", exact=False).wait_for(timeout=180_000)
    _wait_idle(page)
    photo = tmp_path / "fundus.jpg"  # a photo no other test uses (no cached map), at an odd size
    Image.fromarray(data.retina()).convert("RGB").resize((611, 173)).save(photo, quality=90)
    page.evaluate(_WATCH)
    page.locator(f'{SIDEBAR} input[type="file"]').first.set_input_files(str(photo))
    page.locator(f'{MAIN} [data-testid="stProgress"]').first.wait_for(timeout=120_000)
    _shot(page, screenshot_dir, "long_method_new_photo")
    page.get_by_text("Explained class: lampshade", exact=False).wait_for(timeout=180_000)
    seen = page.evaluate("() => { clearInterval(window.__watch); return window.__seen }")
    running = [s for s in seen if s["progress"]]
    assert running, "the occlusion run was never seen"
    assert all(s["head"].startswith("lampshade") for s in running), running[0]
    assert not [s for s in seen if s["head"].startswith("lampshade") and "Egyptian cat" in s["details"]]
    # no map at all until the new one is there (a later bar under the new map, deletion and insertion running
    # by themselves, is not this run's)
    assert all(s["images"] == 0 for s in running if not s["details"])
    _wait_idle(page)
    assert page.locator(f'{MAIN} [data-testid="stImage"]').count() == 3


def test_model_without_weights_shows_one_card_and_a_way_back(page, app_url, screenshot_dir):
    page.goto(app_url)
    _headline(page)
    _wait_idle(page)
    option = _open_menu(page, page.locator(SIDEBAR).get_by_role("combobox", name="Classifier", exact=True),
                        page.get_by_role("option", name="ResNet-18", exact=False).first)
    assert "(↓ " in option.inner_text()  # a download, with its size
    option.click()
    _wait_idle(page)
    card = page.locator(f"{MAIN} .st-key-problem_model")
    card.wait_for()
    text = card.inner_text()
    assert "ResNet-18 needs its weight file" in text and "resnet18-f37072fd.pth" in text
    assert "offline" in text and "$TORCH_HOME/hub/checkpoints" in text
    from models.torchvision_zoo import checkpoint_dir

    assert f"here that is {checkpoint_dir()}" in text  # this browser is on the server's machine
    assert page.locator(f"{MAIN} .st-key-problem_model").count() == 1
    assert page.locator(f'{SIDEBAR} [data-testid="stAlertContentError"]').count() == 0
    assert page.locator(MAIN).get_by_text("Choose a model", exact=False).count() == 0
    assert "model" not in parse_qs(urlparse(page.url).query)
    _shot(page, screenshot_dir, "offline_model")

    card.get_by_role("button").click()
    _wait_headline(page, r" — \d+\.\d%$")
    assert _select_text(page, "Classifier", where=SIDEBAR).startswith("EfficientNet-Lite0")


def test_link_made_after_an_upload_opens_with_a_notice(page, browser, app_url, tmp_path, screenshot_dir):
    page.goto(app_url)
    _headline(page)
    _wait_idle(page)
    _upload(page, _photo(tmp_path, "coffee", "my_cup.png"))
    _pick(page, "Class", "cup (968)")
    page.wait_for_function("() => new URL(location.href).searchParams.get('class') === '968'")
    link = page.url
    assert parse_qs(urlparse(link).query)["image"] == ["upload:my_cup.png"]

    with page_at(browser, 1440, 1000, 60_000) as other:
        other.goto(link)
        top = _headline(other).split(" — ")[0]
        _wait_idle(other)
        notice = other.locator(MAIN).get_by_text("made on an uploaded photo (my_cup.png)", exact=False)
        notice.wait_for()
        assert top != "cup"  # the sample is explained, for its own class
        assert _select_text(other, "Class").startswith(f"top-1 prediction: {top} — ")
        assert other.get_by_text("Explained class: cup", exact=False).count() == 0
        _shot(other, screenshot_dir, "link_from_upload")


def test_page_links_reopen_their_view(page, browser, app_url, screenshot_dir):
    page.goto(f"{app_url}/layers")
    page.get_by_role("heading", name="Layers").wait_for()
    page.get_by_text("Deconvnet projection to pixel space").wait_for(timeout=180_000)
    _wait_idle(page)
    _pick(page, "Layer", "blocks.2.1 ·", typed="blocks.2.1")  # the grouped list: blocks, not their container
    channel_text = _select_text(page, "Channel")
    _open_menu(page, page.locator(MAIN).get_by_role("combobox", name="Channel", exact=True),
               page.get_by_role("option").nth(2)).click()
    _wait_idle(page)
    picked = _select_text(page, "Channel")
    assert picked != channel_text and picked.endswith("(rank 3)")
    page.wait_for_function("() => new URL(location.href).searchParams.get('channel') !== null")
    link = page.url

    with page_at(browser, 1440, 1000, 60_000) as other:
        other.goto(link)
        other.get_by_text("Deconvnet projection to pixel space").wait_for(timeout=180_000)
        _wait_idle(other)
        assert "│ blocks.2.1 ·" in _select_text(other, "Layer")
        assert _select_text(other, "Channel") == picked
        # Occlusion's settings and probe, Invariance's transformation, Compare's methods ride in a link too.
        other.goto(f"{app_url}/occlusion?p.occlusion.patch=160&p.occlusion.stride=160&p.occlusion.fill=black"
                   "&occ_x=120&occ_y=90")
        other.get_by_text("Patch 160px at x 120, y 90").wait_for(timeout=180_000)
        _wait_idle(other)
        assert _select_text(other, "Fill") == "black"
        _shot(other, screenshot_dir, "occlusion_link")
        other.goto(f"{app_url}/invariance?inv_kind=rotate&inv_range=-30,30&inv_steps=3")
        other.get_by_text("Some of the transformed photos").wait_for(timeout=180_000)
        _wait_idle(other)
        captions = other.locator(f'{MAIN} [data-testid="stImage"]').all_inner_texts()
        assert [c.split(" · ")[0] for c in captions] == ["-30°", "0°", "30°"]
        other.goto(f"{app_url}/compare?compare_methods=gradcam,saliency")
        other.locator('[data-testid="stCaptionContainer"]').filter(has_text=re.compile(r"\d m?s · ")).nth(1).wait_for(timeout=180_000)
        _wait_idle(other)
        assert other.locator(MAIN).get_by_text("Saliency (gradient)", exact=True).count() >= 1
        assert other.locator(MAIN).get_by_text("Grad-CAM++", exact=True).count() == 0


def test_back_returns_to_the_previous_page(page, app_url, screenshot_dir):
    """Open a Layers link, go to Occlusion (which writes its own settings into the URL), press Back: Layers
    comes back with the linked layer (each URL update is one history entry, not one per setting)."""
    page.goto(f"{app_url}/layers?feature_layer=blocks.3.0&channel=5")
    page.get_by_text("Feature map 5 (enlarged to the photo)").wait_for(timeout=180_000)
    _wait_idle(page)
    page.locator('[data-testid="stSidebarNav"]').get_by_text("Occlusion", exact=True).click()
    page.get_by_text("Patch at one spot").wait_for(timeout=180_000)
    _wait_idle(page)
    for _ in range(2):  # the page switch itself, then the Occlusion settings written into the URL
        page.go_back()
        _wait_idle(page)
        if page.get_by_role("heading", name="Layers").count():
            break
    page.get_by_text("Feature map 5 (enlarged to the photo)").wait_for(timeout=180_000)
    assert urlparse(page.url).path == "/layers"
    assert "│ blocks.3.0 ·" in _select_text(page, "Layer")
    _shot(page, screenshot_dir, "back_to_layers")


def test_input_size_is_picked_once_and_kept_across_pages(page, app_url, screenshot_dir):
    """Pick 320 px in the sidebar: the headline's caption names it, the link carries it, and the Layers page
    (reached from the page menu) keeps it."""
    page.goto(f"{app_url}/")
    own = _wait_headline(page, ".")
    box = page.locator(SIDEBAR).get_by_role("combobox", name="Input size", exact=True)
    box.scroll_into_view_if_needed()  # as a person scrolls the sidebar first (a menu opened mid-scroll closes)
    page.wait_for_timeout(500)
    box.click()
    page.get_by_role("option", name="320 px", exact=False).first.click()
    page.get_by_text("320 px input", exact=False).first.wait_for(timeout=180_000)
    _wait_idle(page)
    assert _headline(page) != own  # the model saw another input
    assert parse_qs(urlparse(page.url).query)["size"] == ["320"]
    page.locator('[data-testid="stSidebarNav"]').get_by_text("Layers", exact=True).click()
    page.get_by_role("heading", name="Layers").wait_for(timeout=180_000)
    _wait_idle(page)
    assert _select_text(page, "Input size", where=SIDEBAR).startswith("320 px")
    assert parse_qs(urlparse(page.url).query)["size"] == ["320"]
    _shot(page, screenshot_dir, "input_size_on_layers")


def test_sidebar_only_where_it_is_used(page, app_url, screenshot_dir):
    page.goto(f"{app_url}/learn")
    page.get_by_role("heading", name="Learn").wait_for()
    _wait_idle(page)
    sidebar = page.locator(SIDEBAR)
    assert sidebar.locator('input[type="file"]').count() == 0
    assert sidebar.get_by_role("combobox").count() == 0
    _shot(page, screenshot_dir, "learn_sidebar")
    page.goto(f"{app_url}/batch")
    page.get_by_role("heading", name="Batch").wait_for()
    _wait_idle(page)
    assert page.locator('input[type="file"]').count() == 1
    assert sidebar.locator('input[type="file"]').count() == 0
    assert sidebar.get_by_role("combobox", name="Classifier", exact=True).count() == 1


def test_server_log_has_no_widget_warnings(server_log):
    """After every browser test so far (this file runs last), Streamlit logged no widget warning."""
    log = server_log()
    assert "created with a default value but also had its value set" not in log
    bad = [line for line in log.splitlines() if "streamlit" in line.lower() and "WARNING" in line
           and "widget" in line.lower()]
    assert not bad, bad
