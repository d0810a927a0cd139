// stemforge VST3 -- the model contract: plugin/stemforge/core/contract.json, embedded when the
// engine is built (CMake writes it into contract_json.h), checked here with the same tables, in
// the same order and with the same messages as stemforge.core.contract does in Python.
// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <cstdio>
#include <set>
#include <stdexcept>
#include <string>

#include "Json.h"
#include "contract_json.h"  // kContractJson: the text of contract.json

namespace stemforge {

struct ContractError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

class Contract {
public:
    static const Contract& get() {
        static const Contract contract;
        return contract;
    }
    const Json& spec() const { return spec_; }
    const Json& resampling() const { return spec_.at("resampling"); }
    const Json& field(const std::string& name) const {
        for (const auto& f : spec_.at("fields").items)
            if (f.at("name").str == name) return f;
        throw std::logic_error("contract.json has no field " + name);
    }

    // A value as both faces print it: integers in full, numbers as %g, strings quoted.
    static std::string show(const Json& v) {
        switch (v.type) {
            case Json::Bool:
                return v.b ? "true" : "false";
            case Json::Number: {
                if (v.integral) return v.raw.size() > 1 && v.raw == "-0" ? "0" : v.raw;
                char buf[64];
                std::snprintf(buf, sizeof(buf), "%g", v.num);
                return buf;
            }
            case Json::String:
                return "'" + v.str + "'";
            case Json::Array: {
                std::string out;
                for (const auto& item : v.items) out += (out.empty() ? "" : ", ") + show(item);
                return out;
            }
            default:
                return "null";
        }
    }

    // The metadata of `text` with every field (defaults filled in), or ContractError in the
    // contract's words at the first field or rule it breaks (stemforge.core.contract.check_metadata).
    Json check(const std::string& text) const {
        Json d;
        try {
            d = JsonParser(text).document();
        } catch (const std::exception& e) {
            throw ContractError(message("json", {{"file", spec_.at("metadata_file").str}, {"why", e.what()}}));
        }
        const std::string contract = spec_.at("contract").str;
        if (!d.has("contract") || d.at("contract").type != Json::String || d.at("contract").str != contract)
            throw ContractError(message("contract", {{"file", spec_.at("metadata_file").str}, {"contract", contract}}));
        Json out;
        out.type = Json::Object;
        for (const auto& f : spec_.at("fields").items) {
            const std::string& name = f.at("name").str;
            if (!d.has(name)) {
                if (f.has("required") && f.at("required").b) throw ContractError(message("missing", {{"field", name}}));
                out.fields[name] = f.at("default");
                continue;
            }
            const Json& v = d.at(name);
            checkField(f, v, out);
            out.fields[name] = v;
        }
        for (const auto& rule : spec_.at("rules").items) {
            bool applies = true;
            std::string whenKey;
            const Json* whenValue = nullptr;
            if (rule.has("when")) {
                for (const auto& kv : rule.at("when").fields) {
                    whenKey = kv.first;
                    whenValue = &kv.second;
                    if (!same(out.at(kv.first), kv.second)) applies = false;
                }
            }
            if (!applies) continue;
            const std::string& name = rule.at("field").str;
            const std::string& other = rule.at("at_least").str;
            if (out.at(name).num < out.at(other).num) {
                if (whenValue)
                    throw ContractError(message("at_least_when", {{"field", name},
                                                                  {"other", other},
                                                                  {"bound", show(out.at(other))},
                                                                  {"value", show(out.at(name))},
                                                                  {"when", whenKey},
                                                                  {"when_value", show(*whenValue)}}));
                throw ContractError(message("at_least", {{"field", name},
                                                         {"other", other},
                                                         {"bound", show(out.at(other))},
                                                         {"value", show(out.at(name))}}));
            }
        }
        return out;
    }

private:
    Contract() : spec_(JsonParser(kContractJson).document()) {}

    std::string message(const std::string& key, const std::map<std::string, std::string>& values) const {
        std::string t = spec_.at("messages").at(key).str, out;
        for (size_t k = 0; k < t.size(); ++k) {
            if (t[k] == '{') {
                const size_t end = t.find('}', k);
                out += values.at(t.substr(k + 1, end - k - 1));
                k = end;
            } else {
                out += t[k];
            }
        }
        return out;
    }

    static bool same(const Json& a, const Json& b) {  // scalars of the tables
        if (a.type != b.type) return false;
        if (a.type == Json::String) return a.str == b.str;
        if (a.type == Json::Bool) return a.b == b.b;
        if (a.type == Json::Number) return a.num == b.num;
        return false;
    }

    static bool typed(const Json& v, const std::string& type) {
        if (type == "str") return v.type == Json::String;
        if (type == "bool") return v.type == Json::Bool;
        if (type == "int") return v.type == Json::Number && v.integral;
        if (type == "float") return v.type == Json::Number;
        if (type == "names") return v.type == Json::Array;
        throw std::logic_error("contract.json: unknown type " + type);
    }

    void checkField(const Json& f, const Json& v, const Json& out) const {
        const std::string& name = f.at("name").str;
        const std::string& type = f.at("type").str;
        // a number too large for a double: a type error as written with a fraction or exponent
        // (Python reads it as an infinite float), else an integer, compared as such (Python's int)
        if (!typed(v, type) || (v.type == Json::Number && !v.integral && !std::isfinite(v.num)))
            throw ContractError(message("type", {{"field", name}, {"type", spec_.at("type_names").at(type).str}}));
        if (type == "names") {
            std::set<std::string> seen;
            for (const auto& s : v.items)
                if (s.type != Json::String || s.str.empty() || !seen.insert(s.str).second)
                    throw ContractError(message("names", {{"field", name}}));
            const long n = long(v.items.size());
            if (f.has("min_items") && n < long(f.at("min_items").num))
                throw ContractError(message(
                    "min_items", {{"field", name}, {"bound", show(f.at("min_items"))}, {"value", std::to_string(n)}}));
            if (f.has("max_items") && n > long(f.at("max_items").num))
                throw ContractError(message(
                    "max_items", {{"field", name}, {"bound", show(f.at("max_items"))}, {"value", std::to_string(n)}}));
            if (f.has("max_bytes"))
                for (const auto& s : v.items)
                    if (double(s.str.size()) > f.at("max_bytes").num)
                        throw ContractError(message("max_bytes", {{"field", name},
                                                                  {"bound", show(f.at("max_bytes"))},
                                                                  {"value", std::to_string(s.str.size())}}));
            return;
        }
        if (f.has("one_of")) {
            bool found = false;
            for (const auto& c : f.at("one_of").items) found = found || same(v, c);
            if (!found)
                throw ContractError(
                    message("one_of", {{"field", name}, {"choices", show(f.at("one_of"))}, {"value", show(v)}}));
        }
        if (f.has("min") && !(v.num >= f.at("min").num))
            throw ContractError(message("min", {{"field", name}, {"bound", show(f.at("min"))}, {"value", show(v)}}));
        if (f.has("max") && !(v.num <= f.at("max").num))
            throw ContractError(message("max", {{"field", name}, {"bound", show(f.at("max"))}, {"value", show(v)}}));
        if (f.has("below") && !(v.num < f.at("below").num))
            throw ContractError(
                message("below", {{"field", name}, {"bound", show(f.at("below"))}, {"value", show(v)}}));
        if (f.has("kinds")) {
            const std::string& kind = out.at("kind").str;
            bool allowed = false;
            std::string kinds;
            for (const auto& k : f.at("kinds").items) {
                allowed = allowed || k.str == kind;
                kinds += (kinds.empty() ? "" : ", ") + k.str;
            }
            if (!allowed && !same(v, f.at("default")))
                throw ContractError(
                    message("kinds", {{"field", name}, {"kinds", kinds}, {"value", show(v)}, {"kind", kind}}));
        }
    }

    Json spec_;
};

}  // namespace stemforge
