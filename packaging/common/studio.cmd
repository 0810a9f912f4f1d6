@echo off
rem Studio's Start-menu launcher: finishes an unfinished installation, then starts Studio.
setlocal
for %%i in ("%~dp0..") do set "ROOT=%%~fi"
findstr /c:"\"state\": \"installed\"" "%ROOT%\state.json" >nul 2>&1
if errorlevel 1 (
  echo Studio's installation is unfinished or damaged; completing it first.
  call "%~dp0setup.cmd" install --prefix "%ROOT%" || pause
)
rem pythonw: the window without a console window behind it.
start "" "%ROOT%\env\Scripts\pythonw.exe" -m studio %*
