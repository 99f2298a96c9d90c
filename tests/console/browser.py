"""The console in a real browser (Debian's chromium, driven by Playwright), as a person uses it.

Run by tests/console.rs against a real server it started and filled with records; every step
asserts what a person would check on screen and saves a screenshot under the given directory.
Arguments: BASE_URL ADMIN_KEY QUERY_KEY WORKSPACE_ID SCREENSHOT_DIR
"""

import json
import re
import sys
import time
import urllib.parse
import urllib.request

from playwright.sync_api import expect, sync_playwright

BASE, ADMIN_KEY, QUERY_KEY, WORKSPACE, SHOTS = sys.argv[1:6]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
HOSTILE = "/tmp/<script>alert(1)</script>"


def kql(query, timespan="PT24H"):
    """Runs a query through the API with the query key: the numbers the console must agree with."""
    body = json.dumps({"query": query, "timespan": timespan}).encode()
    req = urllib.request.Request(f"{BASE}/v1/workspaces/{WORKSPACE}/query", data=body, method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {QUERY_KEY}"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.load(resp)["tables"][0]["rows"]


def api(path):
    req = urllib.request.Request(f"{BASE}{path}", headers={"Authorization": f"Bearer {QUERY_KEY}"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.load(resp)


def shot(page, name):
    page.screenshot(path=f"{SHOTS}/{name}.png", full_page=True)


def number(text):
    return int(text.replace(",", ""))


def sign_in(page):
    page.goto(f"{BASE}/")
    expect(page).to_have_url(re.compile(r"/signin\?next=%2F$"))
    page.fill("#key", "flk_not_a_key")
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_contain_text("That key is not valid.")
    shot(page, "01-signin-refused")
    page.fill("#key", ADMIN_KEY)
    page.click("button[type=submit]")
    expect(page.get_by_test_id("principal")).to_have_text("secops")


def wait_for_alert():
    deadline = time.time() + 60
    while time.time() < deadline:
        alerts = api("/v1/alerts?state=all")["value"]
        if alerts:
            return alerts[0]["alertId"]
        time.sleep(0.5)
    raise AssertionError("the rule raised no alert within 60 s")


def overview(page):
    page.goto(f"{BASE}/?range=24h")
    silent_cutoff = "ago(15m)"
    expected = {
        "machines-reporting": kql("Heartbeat | summarize by Computer | count")[0][0],
        "machines-silent": kql(f"Heartbeat | summarize Last = max(TimeGenerated) by Computer "
                               f"| where Last < {silent_cutoff} | count")[0][0],
        "changes": kql("ConfigurationChange | count")[0][0],
        "coverage-losses": kql("ConfigurationChange | where ChangeCategory == 'CoverageLost' | count")[0][0],
        "active-alerts": len([a for a in api("/v1/alerts?state=all")["value"] if a["monitorCondition"] == "Fired"]),
    }
    assert expected["machines-reporting"] == 2 and expected["machines-silent"] == 1, expected
    for tile, value in expected.items():
        shown = number(page.get_by_test_id(tile).locator(".number").inner_text())
        assert shown == value, f"tile {tile} shows {shown}, KQL says {value}"
    expect(page.locator("[data-chart=changes-chart][data-drawn='1'] canvas").first).to_be_visible()
    shot(page, "02-overview")
    # A tile is a link to its list.
    page.get_by_test_id("machines-silent").click()
    expect(page.locator("#machines tbody tr")).to_have_count(1)
    expect(page.locator("#machines tbody")).to_contain_text("db1")
    shot(page, "03-machines-silent")
    page.get_by_role("link", name="db1").click()
    expect(page.locator("h1")).to_have_text("Machine db1")
    shot(page, "04-machine")


def changes(page):
    page.goto(f"{BASE}/changes?range=24h")
    page.fill("input[name=path]", "/etc/app/")
    page.click("form.filters button[type=submit]")
    rows = page.locator("table.changes tbody tr")
    expect(rows).to_have_count(50)
    for text in rows.locator("td.path").all_inner_texts():
        assert "/etc/app/" in text, text
    shot(page, "05-changes-filtered")
    page.get_by_test_id("next-page").click()
    expect(rows).to_have_count(10)
    expect(page.get_by_test_id("next-page")).to_have_count(0)
    # The hostile path is text, never markup.
    page.goto(f"{BASE}/changes?range=24h&computer=db1")
    expect(page.locator("td.path", has_text=HOSTILE)).to_have_count(1)
    assert page.locator("table.changes script").count() == 0
    shot(page, "06-hostile-path")


def change_detail(page):
    page.goto(f"{BASE}/changes?range=24h&path=motd")
    page.locator("table.changes tbody tr td a").first.click()
    expect(page.get_by_test_id("change-path")).to_have_text("/etc/motd")
    compare = page.get_by_test_id("before-after")
    checksum = compare.locator("tr", has_text="Checksum")
    expect(checksum).to_have_class(re.compile("differs"))
    expect(checksum).to_contain_text("a" * 64)
    expect(checksum).to_contain_text("b" * 64)
    expect(compare.locator("tr", has_text="Mode")).to_contain_text("0600")
    diff = page.get_by_test_id("content-diff")
    expect(diff.locator("tr.del")).to_contain_text("line two")
    expect(diff.locator("tr.ins")).to_contain_text("line 2")
    # The history arrives after the page: this change is the file's only one on web1.
    expect(page.locator("#history[data-loaded='1'] table.changes tbody tr")).to_have_count(1)
    expect(page.get_by_test_id("same-checksum")).to_contain_text("0 other machines")
    shot(page, "07-change-detail")


def hunting(page):
    page.goto(f"{BASE}/hunt?range=24h")
    page.fill("#query", 'ConfigurationChange\n| wher Computer == "web1"')
    page.press("#query", "Control+Enter")
    error = page.get_by_test_id("query-error")
    expect(error).to_contain_text("(line 2, column 3)")
    lines = error.inner_text().split("\n")
    caret = lines[-1]
    assert caret.strip() == "^" and caret.index("^") == 2, lines
    assert lines[-2][caret.index("^"):].startswith("wher"), lines
    shot(page, "08-hunting-error")
    page.fill("#query", "ConfigurationChange\n| summarize Changes = count() by bin(TimeGenerated, 5m), ChangeCategory\n"
                        "| render timechart")
    page.press("#query", "Control+Enter")
    expect(page.locator("[data-testid=chart][data-drawn='1'] canvas").first).to_be_visible()
    expect(page.locator("#results tbody tr").first).to_be_visible()
    # The query is in this browser's history.
    expect(page.locator("#history li").first).to_contain_text("render timechart")
    shot(page, "09-hunting-chart")
    # Saved on the server, it is a link anyone signed in can open.
    page.fill("input[name=name]", "Changes by category")
    page.get_by_role("button", name="Save this query").click()
    expect(page).to_have_url(re.compile(r"/hunt\?saved=[0-9a-f]{32}$"))
    link = page.url
    expect(page.locator("ul.saved")).to_contain_text("Changes by category")
    page.goto(link)
    expect(page.locator("#query")).to_have_value(re.compile("render timechart"))
    expect(page.locator("[data-testid=chart][data-drawn='1'] canvas").first).to_be_visible()


def alerts(page, alert_id):
    page.goto(f"{BASE}/alerts")
    page.locator(f"a[href='/alerts/{alert_id}']").click()
    expect(page.get_by_test_id("alert-state")).to_have_text("New")
    page.fill("#comment", "Looking into the motd change")
    page.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_test_id("alert-state")).to_have_text("Acknowledged")
    page.fill("#comment", "Planned change, ticket CHG-42")
    page.get_by_role("button", name="Close").click()
    expect(page.get_by_test_id("alert-state")).to_have_text("Closed")
    expect(page.locator("#state-history tbody tr")).to_have_count(2)
    notifications = page.locator("section.panel", has_text="Notifications sent for this alert")
    expect(notifications.locator("tbody tr").first).to_contain_text("Webhook")
    shot(page, "10-alert-closed")
    # Who did it, in AlertEvent, found by hunting.
    query = f'AlertEvent\n| where AlertId == "{alert_id}" and isnotempty(AlertState)\n' \
            "| project TimeGenerated, AlertState, Principal, Comment\n| sort by TimeGenerated asc"
    page.goto(f"{BASE}/hunt?range=24h&q={urllib.parse.quote(query)}")
    rows = page.locator("#results tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("Acknowledged")
    expect(rows.nth(1)).to_contain_text("Closed")
    expect(rows.nth(1)).to_contain_text("secops")
    expect(rows.nth(1)).to_contain_text("CHG-42")
    shot(page, "11-alert-evidence")


def rules(page):
    page.goto(f"{BASE}/rules")
    page.get_by_role("link", name="New rule").click()
    page.fill("input[name=name]", "etc-shadow-changed")
    page.fill("textarea[name=query]", 'ConfigurationChange\n| where FileSystemPath == "/etc/shadow"\n| projct Computer')
    page.fill("input[name=actions]", "ops")
    page.get_by_role("button", name="Save").click()
    problems = page.get_by_test_id("rule-problems")
    expect(problems).to_contain_text("projct")
    expect(problems).to_contain_text("^")
    shot(page, "12-rule-invalid")
    page.fill("textarea[name=query]", 'ConfigurationChange\n| where FileSystemPath startswith "/etc/"\n'
                                      "| project TimeGenerated, Computer, FileSystemPath")
    page.get_by_role("button", name="Preview").click()
    preview = page.get_by_test_id("preview")
    expect(preview).to_be_visible()
    # The rule's last window is the 5 minutes of records received: every change under /etc/ the
    # test posted (60 under /etc/app/ and /etc/motd), each one an alert.
    expect(page.get_by_test_id("preview-rows")).to_have_text("61")
    expect(page.get_by_test_id("preview-alerts")).to_have_text("61")
    shot(page, "13-rule-preview")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#rules")).to_contain_text("etc-shadow-changed")
    shot(page, "14-rules")


def other_pages(page):
    page.goto(f"{BASE}/deliveries")
    expect(page.locator("h1")).to_have_text("Deliveries")
    shot(page, "15-deliveries")
    page.goto(f"{BASE}/audit?range=24h&principal=secops")
    expect(page.locator("table.data")).to_contain_text("console sign-in")
    shot(page, "16-audit")


def report(page):
    page.goto(f"{BASE}/report?range=24h")
    expect(page.locator("#gaps")).to_contain_text("db1")
    assert "web1" not in page.locator("#gaps").inner_text()
    expect(page.locator("#report-alerts")).to_contain_text("Closed")
    shot(page, "17-report")


def sign_out(page):
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/signin$"))
    page.goto(f"{BASE}/changes")
    expect(page).to_have_url(re.compile(r"/signin\?next="))
    shot(page, "18-signed-out")


def main():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        dialogs, errors = [], []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: errors.append(str(e)))
        sign_in(page)
        alert_id = wait_for_alert()
        overview(page)
        changes(page)
        change_detail(page)
        hunting(page)
        alerts(page, alert_id)
        rules(page)
        other_pages(page)
        report(page)
        sign_out(page)
        browser.close()
        assert not dialogs, f"a page opened a dialog (script ran?): {dialogs}"
        assert not errors, f"script errors: {errors}"
    print("console browser test: all steps passed")


if __name__ == "__main__":
    main()
