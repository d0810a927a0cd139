"""What Ardour shows for the plugin's choice parameters (`model`, `stem`, `output`, `margin`).

    python -m bench.ardour_parameters [--bundle PATH]

Headless Ardour 7 (`ardour7-lua`, dummy backend) scans the bundle, inserts it on a track, sets
each value of each choice through Ardour's control (`ARDOUR.LuaAPI.set_processor_param`) and reads
back the text Ardour shows for it: `PluginInsert::PluginControl::get_user_string`, the text of the
generic plugin window's slider (`AutomationBarController::get_label`). For a VST3 it is the
plugin's `getParamStringByValue` when not empty, else Ardour's number. Ardour 7.3's Lua does not
bind `get_user_string` and loads no C modules, so a small library (built with g++, LD_PRELOADed)
adds a Lua function `user_string` that calls Ardour's own one on the live control. It also prints
the descriptor Ardour builds (`VST3Plugin::get_parameter_descriptor`; Ardour 7.3 clears
`enumeration` when there are no scale points, and it makes none for a VST3). Everything Ardour
writes (scan cache, configuration, session) goes to a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARDOUR = Path("/usr/lib/ardour7")
NAMES = ("model", "stem", "output", "margin")

SHIM = r"""
#include <dlfcn.h>
#include <string>
extern "C" {
typedef struct lua_State lua_State;
typedef int (*lua_CFunction)(lua_State*);
void* lua_touserdata(lua_State*, int);
const char* lua_pushstring(lua_State*, const char*);
void lua_pushcclosure(lua_State*, lua_CFunction, int);
void lua_setglobal(lua_State*, const char*);
int luaL_error(lua_State*, const char*, ...);
}
// A luabridge userdata is [vtable][m_p], m_p -> the boost::shared_ptr<AutomationControl>.
extern "C" int user_string(lua_State* L) {
    void** ud = static_cast<void**>(lua_touserdata(L, 1));
    void* ctrl = ud ? *static_cast<void**>(ud[1]) : nullptr;
    Dl_info info;
    if (!ctrl || !dladdr(*static_cast<void**>(ctrl), &info) || !info.dli_sname
        || std::string(info.dli_sname) != "_ZTVN6ARDOUR12PluginInsert13PluginControlE")
        return luaL_error(L, "not a PluginInsert::PluginControl");
    auto fn = reinterpret_cast<std::string (*)(const void*)>(
        dlsym(RTLD_DEFAULT, "_ZNK6ARDOUR12PluginInsert13PluginControl15get_user_stringB5cxx11Ev"));
    if (!fn) return luaL_error(L, "PluginInsert::PluginControl::get_user_string not found");
    lua_pushstring(L, fn(ctrl).c_str());
    return 1;
}
// Preloaded in front of libardour: Ardour's Lua loads no C libraries (and luasession itself holds
// the Lua library), so the first call of ARDOUR.LuaAPI.desc_scale_points also defines the global
// user_string, then does what Ardour's own does.
extern "C" int _ZN6ARDOUR6LuaAPI17desc_scale_pointsEP9lua_State(lua_State* L) {
    lua_pushcclosure(L, user_string, 0);
    lua_setglobal(L, "user_string");
    return reinterpret_cast<int (*)(lua_State*)>(
        dlsym(RTLD_NEXT, "_ZN6ARDOUR6LuaAPI17desc_scale_pointsEP9lua_State"))(L);
}
"""

LUA = r"""
local s = assert(create_session("@DIR@/session", "params", 48000))
local track = s:new_audio_track(2, 2, nil, 1, "t", ARDOUR.PresentationInfo.max_order,
                                ARDOUR.TrackMode.Normal, true, false):front()
local proc = ARDOUR.LuaAPI.new_plugin(s, "stemforge", ARDOUR.PluginType.VST3, "")
assert(not proc:isnil(), "Ardour found no VST3 named stemforge")
assert(track:add_processor_by_index(proc, 0, nil, true) == 0)
local plug = proc:to_plugininsert():plugin(0)
local wanted = { @NAMES@ }
for j = 0, plug:parameter_count() - 1 do
  local label = plug:parameter_label(j)
  if wanted[label] then
    local _, refs = plug:get_parameter_descriptor(j, ARDOUR.ParameterDescriptor())
    local d = refs[2]
    local points = 0
    for _ in pairs(ARDOUR.LuaAPI.desc_scale_points(d)) do points = points + 1 end
    assert(user_string, "the preloaded shim did not define user_string")
    print(string.format("DESC\t%s\t%g\t%g\t%s\t%s\t%s\t%d\t%d", label, d.lower, d.upper,
          tostring(d.integer_step), tostring(d.enumeration), tostring(d.toggled), d.rangesteps, points))
    local n = d.toggled and 2 or d.rangesteps
    local ctrl = proc:to_automatable():automation_control(
        Evoral.Parameter(ARDOUR.AutomationType.PluginAutomation, 0, j), false)
    for i = 0, n - 1 do
      local v = d.lower + (d.upper - d.lower) * i / (n - 1)
      assert(ARDOUR.LuaAPI.set_processor_param(proc, j, v))
      print(string.format("VALUE\t%s\t%d\t%g\t%s", label, i, ctrl:get_value(), user_string(ctrl)))
    end
  end
end
close_session()
quit()
"""


def run(bundle: Path) -> str:
    """The table of what Ardour shows, as text."""
    for tool in ("ardour7-lua", "g++"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (apt-get install ardour g++)")
    if not (bundle / "Contents").is_dir():
        raise SystemExit(f"no VST3 bundle at {bundle}: build it with python build.py plugin")
    with tempfile.TemporaryDirectory(prefix="ardour-params-") as tmp:
        d = Path(tmp)
        (d / "vst3").mkdir()
        (d / "vst3" / "stemforge.vst3").symlink_to(bundle.resolve())
        env = dict(
            os.environ,
            VST3_PATH=str(d / "vst3"),
            XDG_CACHE_HOME=str(d / "cache"),
            XDG_CONFIG_HOME=str(d / "config"),
            LD_LIBRARY_PATH=str(ARDOUR),
        )
        (d / "shim.cc").write_text(SHIM)
        subprocess.run(
            ["g++", "-shared", "-fPIC", "-O1", str(d / "shim.cc"), "-o", str(d / "shim.so"), "-ldl"], check=True
        )
        subprocess.run(
            [str(ARDOUR / "ardour-vst3-scanner"), "-f", str(d / "vst3" / "stemforge.vst3")],
            env=env,
            check=True,
            capture_output=True,
        )
        names = ", ".join(f'["{n}"] = true' for n in NAMES)
        lua = LUA.replace("@DIR@", tmp).replace("@NAMES@", names)
        (d / "params.lua").write_text(lua)
        env["LD_PRELOAD"] = str(d / "shim.so")
        out = subprocess.run(
            ["ardour7-lua", str(d / "params.lua")], env=env, capture_output=True, text=True, check=False, timeout=600
        )
    rows = [line.split("\t") for line in out.stdout.splitlines() if line.startswith(("DESC\t", "VALUE\t"))]
    if out.returncode != 0 or not rows:
        raise SystemExit(f"ardour7-lua failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    lines = [
        "descriptor (VST3Plugin::get_parameter_descriptor):",
        f"{'parameter':<10}{'lower':>7}{'upper':>7}  integer_step  enumeration  toggled  rangesteps  scale_points",
    ]
    lines += [
        f"{r[1]:<10}{r[2]:>7}{r[3]:>7}  {r[4]:<12}  {r[5]:<11}  {r[6]:<7}  {r[7]:<10}  {r[8]}"
        for r in rows
        if r[0] == "DESC"
    ]
    lines += [
        "",
        "values (set with ARDOUR.LuaAPI.set_processor_param, read with get_user_string):",
        f"{'parameter':<10}{'index':>6}{'value':>9}  Ardour shows",
    ]
    lines += [f"{r[1]:<10}{r[2]:>6}{float(r[3]):>9.4f}  {r[4]}" for r in rows if r[0] == "VALUE"]
    version = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "ardour"], capture_output=True, text=True, check=False
    )
    return f"Ardour {version.stdout or '?'} (ardour7-lua, dummy backend), bundle {bundle}\n\n" + "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, default=ROOT / "build" / "vst3" / "stemforge.vst3")
    print(run(ap.parse_args().bundle))


if __name__ == "__main__":
    main()
