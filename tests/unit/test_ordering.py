"""Natural order: the order a person expects of usernames and employee numbers with numbers in them."""

from workflow.domain.ordering import natural_key


def test_numbers_inside_text_sort_by_their_value():
    names = ["member10", "member2", "Member1", "member", "member2a", "admin", "member02b"]
    assert sorted(names, key=natural_key) == ["admin", "member", "Member1", "member2", "member2a", "member02b",
                                              "member10"]


def test_employee_numbers_with_prefixes_and_chinese_names_sort_without_errors():
    values = ["E100", "E20", "E3", "张三", "", None, "E20-1"]
    assert [v or "" for v in sorted(values, key=natural_key)] == ["", "", "E3", "E20", "E20-1", "E100", "张三"]
