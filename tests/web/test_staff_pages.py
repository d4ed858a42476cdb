"""The users page at a real bank's size: 5,000 staff imported from an HR file, paged, in natural order,
filtered by branch, role and status; a bad HR file is refused whole, each bad row named by its line."""

from __future__ import annotations

import re

from sqlmodel import Session, func, select

from tests.web.support import login, post, set_passwords
from workflow.models import User

HEADER = "employee_no,username,name,branch,roles,active\n"


def _file(lines: list[str]) -> bytes:
    return (HEADER + "".join(line + "\n" for line in lines)).encode("utf-8")


def _usernames(html: str) -> list[str]:
    table = html.split('id="users"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'<a href="/admin/users/\d+">([^<]+)</a>', table)


def _upload(client, data: bytes, name: str = "hr.csv"):
    import io

    return post(client, "/admin/users/import", {"file": (io.BytesIO(data), name)},
                content_type="multipart/form-data")


def _admin(bank, app_for):
    set_passwords(bank.engine)
    client = app_for(bank.engine).test_client()
    assert login(client, "admin").status_code == 302
    return client


def test_five_thousand_staff_from_an_hr_file_page_sort_naturally_and_filter_by_branch_and_role(bank, app_for):
    client = _admin(bank, app_for)
    branches = ("T1", "SB", "OU", "T2")
    lines = [f"H{n},staff{n},员工{n},{branches[n % 4]},{'committee_member' if n % 4 == 1 else 'credit_officer'},"
             f"{'no' if n % 10 == 0 else 'yes'}" for n in range(1, 5001)]
    response = _upload(client, _file(lines))
    assert response.status_code == 200  # the page with the new staff's invitation links, shown this once
    page = response.get_data(as_text=True)
    assert "5000" in page  # the flash: 5,000 staff added
    assert page.split('id="invitation-links"', 1)[1].count("/invite/") == 4500  # the active ones are invited
    page = client.get("/admin/users?q=staff").get_data(as_text=True)
    assert _usernames(page) == [f"staff{n}" for n in range(1, 51)]  # staff2 before staff10
    assert "第 1 页，共 100 页" in page
    page = client.get("/admin/users?q=staff&page=2").get_data(as_text=True)
    assert _usernames(page)[0] == "staff51"
    page = client.get("/admin/users?q=staff&sort=username&order=desc").get_data(as_text=True)
    assert _usernames(page)[:2] == ["staff5000", "staff4999"]
    t1 = bank.branches["T1"]
    page = client.get(f"/admin/users?branch={bank.branches['T2']}&role=committee_member").get_data(as_text=True)
    # T2's committee members: the factory's other_member and the file's n % 4 == 3 … none of those judge
    assert _usernames(page) == ["other_member"]
    page = client.get(f"/admin/users?branch={t1}&role=committee_member&status=active").get_data(as_text=True)
    names = _usernames(page)
    assert names[:3] == ["member1", "member2", "staff1"] and "staff5" in names  # staff1, 5, 9…: n % 4 == 1 at T1
    assert "1252" in page.split('id="user-count"', 1)[1].split("</p>", 1)[0]  # 1,250 (none inactive: n is odd) + 2


def test_a_bad_row_in_the_hr_file_writes_nothing_and_the_page_names_its_line(bank, app_for):
    client = _admin(bank, app_for)
    with Session(bank.engine) as s:
        before = s.exec(select(func.count()).select_from(User)).one()
    lines = [f"H{n},staff{n},员工{n},SB,credit_officer,yes" for n in range(1, 6)]
    lines[3] = "H4,staff4,员工4,SB,auditor committee_member,yes"  # line 5
    response = _upload(client, _file(lines))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    errors = page.split('id="import-errors"', 1)[1].split("</table>", 1)[0]
    assert re.search(r"<td>5</td><td>H4</td><td>[^<]*内部审计", errors), errors
    with Session(bank.engine) as s:
        assert s.exec(select(func.count()).select_from(User)).one() == before


def test_an_unknown_filter_is_a_clear_error(bank, app_for):
    client = _admin(bank, app_for)
    assert client.get("/admin/users?role=judge").status_code == 400


def test_a_gbk_hr_file_imports_and_the_page_says_it_was_read_as_gb18030(bank, app_for):
    client = _admin(bank, app_for)
    lines = [f"G{n},gbk{n},员工{n},SB,credit_officer,是" for n in range(1, 4)]
    response = _upload(client, _file(lines).decode("utf-8").encode("gbk"))
    assert response.status_code == 200  # the new staff's invitation links, shown this once
    page = response.get_data(as_text=True)
    assert "CSV 文件按 GB18030（包含 GBK） 编码读取。" in page and "员工1\thttp" in page


def test_an_hr_file_beyond_the_byte_cap_is_refused_in_the_ui_language(bank, app_for):
    client = _admin(bank, app_for)
    client.application.config["IMPORT_MAX_BYTES"] = 100
    response = _upload(client, _file([f"H{n},staff{n},员工{n},SB,credit_officer,yes" for n in range(1, 20)]))
    assert response.status_code == 400
    assert "文件超过导入允许的大小" in response.get_data(as_text=True)
