import gzip
import hashlib

import pytest

from npembed import FormatError, load_recipes, read_baskets


def _write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode())
    return p


def test_tab_separated_lines_with_spaces_in_names(tmp_path):
    p = _write(tmp_path, "b.txt", "olive oil\tgarlic\tsea salt\nbread\tbutter\n")
    b = read_baskets(p)
    assert b.baskets == [["olive oil", "garlic", "sea salt"], ["bread", "butter"]]
    assert b.stats["separator"] == "\t" and b.lines == [1, 2]


def test_comma_then_whitespace_detection(tmp_path):
    assert read_baskets(_write(tmp_path, "c.txt", "a b,c\nd,e\n")).baskets == [["a b", "c"], ["d", "e"]]
    w = read_baskets(_write(tmp_path, "w.txt", "a  b\tc\n"))  # a tab anywhere wins
    assert w.baskets == [["a  b", "c"]]
    s = read_baskets(_write(tmp_path, "s.txt", "a  b   c\nd e\n"))
    assert s.baskets == [["a", "b", "c"], ["d", "e"]] and s.stats["separator"] == "whitespace"


def test_sep_override(tmp_path):
    p = _write(tmp_path, "x.txt", "a;b,c;d\n")
    assert read_baskets(p, sep=";").baskets == [["a", "b,c", "d"]]
    spaced = _write(tmp_path, "sp.txt", "a\tb c\n")
    assert read_baskets(spaced, sep=" ").baskets == [["a", "b", "c"]]
    with pytest.raises(ValueError, match="`sep` must not be empty"):
        read_baskets(p, sep="")


def test_blank_lines_short_baskets_and_duplicates_are_counted(tmp_path):
    p = _write(tmp_path, "d.txt", "a,b,a,c\n\n   \nsolo\nx,x\nd,e\r\n")
    b = read_baskets(p)
    assert b.baskets == [["a", "b", "c"], ["d", "e"]]
    assert b.lines == [1, 6]
    assert b.stats["blank_lines"] == 2
    assert b.stats["short_baskets"] == 2  # "solo" and "x,x" (one distinct item)
    assert b.stats["duplicate_items"] == 2


def test_empty_fields_are_skipped(tmp_path):
    b = read_baskets(_write(tmp_path, "e.txt", "a,,b,\n"))
    assert b.baskets == [["a", "b"]] and b.stats["empty_items"] == 2


def test_undecodable_bytes_name_the_line(tmp_path):
    p = _write(tmp_path, "u.txt", b"a,b\nc,d\ncaf\xe9,tea\n")
    with pytest.raises(FormatError, match=r"u.txt, line 3: cannot decode byte 0xe9 at column 4 as utf-8\. Pass the file's encoding"):
        read_baskets(p)
    assert read_baskets(p, encoding="latin-1").baskets[2] == ["café", "tea"]
    with pytest.raises(ValueError, match="`encoding` must be a codec Python knows; got 'nope'"):
        read_baskets(p, encoding="nope")


def test_nothing_usable_is_an_error(tmp_path):
    with pytest.raises(FormatError, match=r"no basket with at least 2 distinct items was found \(1 shorter basket\(s\), 1 blank line\(s\)\)"):
        read_baskets(_write(tmp_path, "n.txt", "only\n\n"))
    with pytest.raises(FormatError, match="no basket with at least 2"):
        read_baskets(_write(tmp_path, "empty.txt", ""))


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="data file not found: .*nope.txt"):
        read_baskets(tmp_path / "nope.txt")
    with pytest.raises(IsADirectoryError, match="`--data` must be a file; got the folder"):
        read_baskets(tmp_path)


def test_gzip_is_read_and_a_damaged_one_reported(tmp_path):
    p = _write(tmp_path, "g.txt.gz", gzip.compress(b"a\tb\n"))
    assert read_baskets(p).baskets == [["a", "b"]]
    bad = _write(tmp_path, "bad.gz", gzip.compress(b"a\tb\n" * 100)[:20])
    with pytest.raises(FormatError, match="gzip stream is damaged or cut short"):
        read_baskets(bad)


def test_csv_long_format_groups_rows_by_basket(tmp_path):
    p = _write(tmp_path, "orders.csv", "order,product,qty\n1,milk,2\n2,bread,1\n1,eggs,12\n2,jam,1\n1,milk,1\n3,solo,1\n")
    b = read_baskets(p)
    assert b.baskets == [["milk", "eggs"], ["bread", "jam"]]
    assert b.lines == [2, 3]
    assert b.stats["duplicate_items"] == 1 and b.stats["short_baskets"] == 1
    by_name = read_baskets(p, basket_col="order", item_col="product")
    assert by_name.baskets == b.baskets
    by_index = read_baskets(p, format="csv", basket_col="0", item_col=1)
    assert by_index.baskets == b.baskets


def test_csv_quoted_fields_and_other_separator(tmp_path):
    p = _write(tmp_path, "q.csv", 'user;item\nu1;"salt; coarse"\nu1;pepper\n')
    assert read_baskets(p, sep=";").baskets == [["salt; coarse", "pepper"]]


def test_csv_errors_name_the_problem(tmp_path):
    p = _write(tmp_path, "o.csv", "order,product\n1,milk\n1,eggs\n")
    with pytest.raises(FormatError, match=r"o.csv, line 1: item column 'sku' is not in the header; the columns are \['order', 'product'\]"):
        read_baskets(p, item_col="sku")
    with pytest.raises(FormatError, match=r"basket column index 5 is out of range; the header has 2 columns"):
        read_baskets(p, basket_col=5)
    with pytest.raises(FormatError, match="the basket and item columns must differ; both are 'order'"):
        read_baskets(p, basket_col="order", item_col="order")
    ragged = _write(tmp_path, "r.csv", "a,b,c\nd\ne,f\n")
    with pytest.raises(FormatError, match=r"r.csv, line 2: this row has 1 field\(s\) but the header has 3\. If this file holds one basket per line, pass --format lines"):
        read_baskets(ragged)
    one_col = _write(tmp_path, "one.csv", "items\nmilk\n")
    with pytest.raises(FormatError, match=r"the CSV header has 1 column\(s\) \['items'\]; it needs a basket column and an item column"):
        read_baskets(one_col)
    with pytest.raises(FormatError, match="the file is empty; a CSV needs a header row"):
        read_baskets(_write(tmp_path, "z.csv", ""))
    blank_id = _write(tmp_path, "bid.csv", "o,p\n,milk\n")
    with pytest.raises(FormatError, match=r"line 2: the basket id \(column 'o'\) is empty"):
        read_baskets(blank_id)


def test_option_conflicts(tmp_path):
    p = _write(tmp_path, "b.txt", "a,b\n")
    with pytest.raises(ValueError, match=r"`format` must be one of \('auto', 'lines', 'csv'\); got 'json'"):
        read_baskets(p, format="json")
    with pytest.raises(ValueError, match="`basket_col` / `item_col` apply to CSV files only"):
        read_baskets(p, basket_col="x")
    with pytest.raises(ValueError, match="`skip_fields` applies to the lines layout only"):
        read_baskets(p, format="csv", skip_fields=1)


def test_groceries_file_reads_as_lines(shared_data):
    b = read_baskets(shared_data / "groceries-hahsler2006" / "groceries.csv", format="lines")
    assert len(b) + b.stats["short_baskets"] == 9835
    assert b.baskets[0] == ["citrus fruit", "semi-finished bread", "margarine", "ready soups"]


def _bundled_bytes():
    from importlib import resources

    return gzip.decompress(resources.files("npembed").joinpath("data").joinpath("recipes.tsv.gz").read_bytes())


def test_bundled_recipes_match_the_reference_protocol():
    b = load_recipes()
    assert len(b) == 57320  # 57,691 lines minus 371 one-item recipes, as in the reference figures
    assert b.baskets[0] == ["egg", "yeast", "wheat", "milk", "lard"]
    assert hashlib.sha256(_bundled_bytes()).hexdigest() == "760daa6e73685bf014bdbce0fec9481b072974dab748b0f55f5e6130095fd3e3"


def test_bundled_recipes_are_the_upstream_files_concatenated(shared_data):
    src = shared_data / "flavor-network-ahn2011"
    upstream = b"".join((src / f).read_bytes() for f in ("allr_recipes.txt", "epic_recipes.txt", "menu_recipes.txt"))
    assert _bundled_bytes() == upstream


def test_csv_unterminated_quote_is_an_error_not_a_silent_merge(tmp_path):
    rows = ["order,product"] + [f"{i},item{i % 7}" for i in range(100)]
    rows[51] = '50,"white_wine'
    p = _write(tmp_path, "q.csv", "\n".join(rows) + "\n")
    with pytest.raises(FormatError, match=r"q.csv, line 52: malformed CSV in the row that starts here \(unexpected end of data\); is a quote left open\?"):
        read_baskets(p)


def test_csv_duplicate_header_name_and_separator_length(tmp_path):
    p = _write(tmp_path, "d.csv", "id,id,item\n1,2,a\n")
    with pytest.raises(FormatError, match="the header names column 'id' 2 times; rename one or choose columns by 0-based index"):
        read_baskets(p, basket_col="id")
    assert read_baskets(_write(tmp_path, "d2.csv", "id,id,item\n1,2,a\n1,2,b\n"), basket_col=1, item_col=2).baskets == [["a", "b"]]
    with pytest.raises(ValueError, match="`sep` for a CSV file must be one character; got '::'"):
        read_baskets(p, sep="::")


def test_a_lines_file_named_csv_is_not_read_as_a_table(tmp_path):
    p = _write(tmp_path, "g.csv", "milk,bread,eggs\nbeer,chips\ntea,milk,jam,butter\n")
    with pytest.raises(FormatError, match=r"g.csv, line 2: this row has 2 field\(s\) but the header has 3\. If this file holds one basket per line, pass --format lines"):
        read_baskets(p)
    assert len(read_baskets(p, format="lines")) == 3


def test_cr_only_line_endings(tmp_path):
    b = read_baskets(_write(tmp_path, "mac.txt", "a,b\rc,d\r\re,f\r"))
    assert b.baskets == [["a", "b"], ["c", "d"], ["e", "f"]] and b.lines == [1, 2, 4]


def test_argument_types_are_checked(tmp_path):
    p = _write(tmp_path, "b.txt", "a,b\n")
    with pytest.raises(TypeError, match="`sep` must be a string such as"):
        read_baskets(p, sep=3)
    with pytest.raises(ValueError, match="`skip_fields` must be a non-negative integer; got -1"):
        read_baskets(p, skip_fields=-1)
    with pytest.raises(ValueError, match="`min_items` must be a positive integer; got 0"):
        read_baskets(p, min_items=0)
    with pytest.raises(ValueError, match="`encoding` must be a text encoding such as utf-8 or latin-1; got 'rot13'"):
        read_baskets(p, encoding="rot13")


def test_corrupt_gzip_body_is_a_format_error(tmp_path):
    data = bytearray(gzip.compress(("\t".join(f"item{i}" for i in range(50)) + "\n").encode() * 50))
    for k in range(20, 60):
        data[k] ^= 0xFF
    with pytest.raises(FormatError, match="gzip stream is damaged or cut short"):
        read_baskets(_write(tmp_path, "c.txt.gz", bytes(data)))


def test_wrong_separator_warns(tmp_path, caplog):
    text = "a b c\n" * 10 + "d\te f\n"  # one stray tab makes the whole file tab-separated
    with caplog.at_level("WARNING", logger="npembed"):
        b = read_baskets(_write(tmp_path, "w.txt", text))
    assert len(b) == 1
    assert "10 of 11 baskets have fewer than 2 items and were dropped: is the separator right (detected '\\t'; pass --sep)?" in caplog.text
