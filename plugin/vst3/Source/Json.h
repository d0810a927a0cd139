// stemforge VST3 -- a strict JSON reader (RFC 8259, as Python's json module reads it) for the
// model metadata and the contract that checks it.
// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace stemforge {

struct Json {
    enum Type { Null, Bool, Number, String, Array, Object } type = Null;
    bool b = false;
    double num = 0;
    bool integral = false;  // written without fraction or exponent: a JSON integer, as Python reads it
    std::string raw;        // a number as written (integers are printed from it, at any size)
    std::string str;
    std::vector<Json> items;
    std::map<std::string, Json> fields;  // a repeated key keeps its last value, as in Python

    bool has(const std::string& k) const { return type == Object && fields.count(k) > 0; }
    const Json& at(const std::string& k) const { return fields.at(k); }
};

class JsonParser {
public:
    explicit JsonParser(const std::string& text) : s(text) {}

    // The whole text as one value; std::runtime_error("... at character N") otherwise.
    Json document() {
        Json j = value(0);
        ws();
        if (i != s.size()) fail("extra data");
        return j;
    }

private:
    const std::string& s;
    size_t i = 0;

    [[noreturn]] void fail(const std::string& why) {
        throw std::runtime_error(why + " at character " + std::to_string(i));
    }
    void ws() {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
    }
    bool digit() const { return i < s.size() && s[i] >= '0' && s[i] <= '9'; }

    Json value(int depth) {
        if (depth > 512) fail("too deeply nested");
        ws();
        if (i >= s.size()) fail("unexpected end");
        const char c = s[i];
        Json j;
        if (c == '{') {
            j.type = Json::Object;
            ++i;
            ws();
            if (i < s.size() && s[i] == '}') {
                ++i;
                return j;
            }
            for (;;) {
                ws();
                if (i >= s.size() || s[i] != '"') fail("expected a key");
                std::string key = string();
                ws();
                if (i >= s.size() || s[i] != ':') fail("expected ':'");
                ++i;
                j.fields[key] = value(depth + 1);
                ws();
                if (i < s.size() && s[i] == ',') {
                    ++i;
                    continue;
                }
                if (i < s.size() && s[i] == '}') {
                    ++i;
                    return j;
                }
                fail("expected ',' or '}'");
            }
        }
        if (c == '[') {
            j.type = Json::Array;
            ++i;
            ws();
            if (i < s.size() && s[i] == ']') {
                ++i;
                return j;
            }
            for (;;) {
                j.items.push_back(value(depth + 1));
                ws();
                if (i < s.size() && s[i] == ',') {
                    ++i;
                    continue;
                }
                if (i < s.size() && s[i] == ']') {
                    ++i;
                    return j;
                }
                fail("expected ',' or ']'");
            }
        }
        if (c == '"') {
            j.type = Json::String;
            j.str = string();
            return j;
        }
        if (s.compare(i, 4, "true") == 0) {
            i += 4;
            j.type = Json::Bool;
            j.b = true;
            return j;
        }
        if (s.compare(i, 5, "false") == 0) {
            i += 5;
            j.type = Json::Bool;
            return j;
        }
        if (s.compare(i, 4, "null") == 0) {
            i += 4;
            return j;
        }
        return number();
    }

    // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? ; too large for a double: +-inf, as Python
    Json number() {
        const size_t start = i;
        Json j;
        j.type = Json::Number;
        j.integral = true;
        if (i < s.size() && s[i] == '-') ++i;
        if (!digit()) fail("expecting value");
        if (s[i] == '0')
            ++i;
        else
            while (digit()) ++i;
        if (i < s.size() && s[i] == '.') {
            ++i;
            if (!digit()) fail("expecting a digit after '.'");
            while (digit()) ++i;
            j.integral = false;
        }
        if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
            ++i;
            if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
            if (!digit()) fail("expecting an exponent");
            while (digit()) ++i;
            j.integral = false;
        }
        j.raw = s.substr(start, i - start);
        errno = 0;
        j.num = std::strtod(j.raw.c_str(), nullptr);  // ERANGE: +-HUGE_VAL or 0, as Python's float()
        return j;
    }

    unsigned hex4() {
        if (i + 4 > s.size()) fail("bad \\u escape");
        unsigned code = 0;
        for (int k = 0; k < 4; ++k) {
            const char h = s[i++];
            code <<= 4;
            if (h >= '0' && h <= '9')
                code |= unsigned(h - '0');
            else if (h >= 'a' && h <= 'f')
                code |= unsigned(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F')
                code |= unsigned(h - 'A' + 10);
            else
                fail("bad \\u escape");
        }
        return code;
    }

    static void utf8(std::string& out, unsigned code) {  // lone surrogates as Python's surrogatepass
        if (code < 0x80) {
            out += char(code);
        } else if (code < 0x800) {
            out += char(0xC0 | (code >> 6));
            out += char(0x80 | (code & 0x3F));
        } else if (code < 0x10000) {
            out += char(0xE0 | (code >> 12));
            out += char(0x80 | ((code >> 6) & 0x3F));
            out += char(0x80 | (code & 0x3F));
        } else {
            out += char(0xF0 | (code >> 18));
            out += char(0x80 | ((code >> 12) & 0x3F));
            out += char(0x80 | ((code >> 6) & 0x3F));
            out += char(0x80 | (code & 0x3F));
        }
    }

    std::string string() {
        ++i;  // the opening quote
        std::string out;
        for (;;) {
            if (i >= s.size()) fail("unterminated string");
            const char c = s[i++];
            if (c == '"') return out;
            if (static_cast<unsigned char>(c) < 0x20) fail("invalid control character");
            if (c != '\\') {
                out += c;
                continue;
            }
            if (i >= s.size()) fail("unterminated string");
            const char e = s[i++];
            switch (e) {
                case '"':
                    out += '"';
                    break;
                case '\\':
                    out += '\\';
                    break;
                case '/':
                    out += '/';
                    break;
                case 'b':
                    out += '\b';
                    break;
                case 'f':
                    out += '\f';
                    break;
                case 'n':
                    out += '\n';
                    break;
                case 'r':
                    out += '\r';
                    break;
                case 't':
                    out += '\t';
                    break;
                case 'u': {
                    unsigned code = hex4();
                    if (code >= 0xD800 && code < 0xDC00 && s.compare(i, 2, "\\u") == 0) {
                        const size_t back = i;
                        i += 2;
                        const unsigned low = hex4();
                        if (low >= 0xDC00 && low < 0xE000)
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                        else
                            i = back;  // not a pair: the high surrogate alone
                    }
                    utf8(out, code);
                    break;
                }
                default:
                    fail("invalid \\escape");
            }
        }
    }
};

}  // namespace stemforge
