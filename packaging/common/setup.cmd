@echo off
rem Studio set-up for Windows: installs Studio's own Python with the bundled uv, then runs
rem Studio's installer on it. Run by the installer, and by the Start-menu launcher when an
rem installation is unfinished.   setup.cmd install|repair|uninstall|status --prefix DIR
rem STUDIO_PYTHON=C:\path\python.exe uses that interpreter instead of downloading one.
setlocal
chcp 65001 >nul
set "HERE=%~dp0"
for %%i in ("%~dp0..") do set "PREFIX=%%~fi"
set "UV_PYTHON_INSTALL_DIR=%PREFIX%\python"
set "UV_CACHE_DIR=%PREFIX%\cache"
set "UV_NO_CONFIG=1"
set "PY=%STUDIO_PYTHON%"
if not defined PY goto managed
echo Using the Python given by STUDIO_PYTHON instead of downloading one: %PY%
goto run
:managed
echo [0/7] Installing Studio's own Python (once; later runs reuse it)...
"%HERE%uv.exe" python install 3.11 --python-preference only-managed
if errorlevel 1 (
  echo Studio installer: could not download Python. Check the network connection ^(or HTTPS_PROXY^) and run this again.
  exit /b 1
)
for /f "usebackq delims=" %%i in (`"%HERE%uv.exe" python find 3.11 --python-preference only-managed`) do set "PY=%%i"
:run
for %%w in ("%HERE%studio-*.whl") do set "PYTHONPATH=%%~fw"
"%PY%" -m studio.installer %* --payload "%HERE%."
exit /b %errorlevel%
