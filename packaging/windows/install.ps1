# Studio installer for Windows: right-click > "Run with PowerShell".
# Creates a private Python environment under %LOCALAPPDATA%\studio-app, installs Studio and
# puts a Start-menu shortcut in place. Needs Python 3.10+ from python.org (tick "Add to PATH").
param(
    [string]$Prefix = "$env:LOCALAPPDATA\studio-app",
    [string]$Source = (Resolve-Path "$PSScriptRoot\..\.."),
    [switch]$Cpu
)
$ErrorActionPreference = "Stop"
function Fail($what, $todo) { Write-Host "Studio installer: error: $what" -ForegroundColor Red; Write-Host "  what to do: $todo"; exit 1 }

$py = Get-Command py -ErrorAction SilentlyContinue
if ($py) { $python = @("py", "-3") } else {
    $py = Get-Command python -ErrorAction SilentlyContinue
    if (-not $py) { Fail "Python 3.10 or newer was not found" "install Python 3.11 from https://www.python.org (tick 'Add python.exe to PATH') and run this again" }
    $python = @("python")
}
Write-Host "Installing Studio into $Prefix"
& $python[0] $python[1..9] -m venv "$Prefix\venv"
if ($LASTEXITCODE -ne 0) { Fail "could not create $Prefix\venv" "check free disk space and that $Prefix is writable" }
$torch = if ($Cpu) { "torch==2.13.0" } else { "torch>=2.4,<2.15" }
& "$Prefix\venv\Scripts\python.exe" -m pip install --disable-pip-version-check $torch "$Source"
if ($LASTEXITCODE -ne 0) { Fail "package installation failed (the messages above name the package)" "check your network connection and run this installer again" }

$shell = New-Object -ComObject WScript.Shell
$lnk = $shell.CreateShortcut("$env:APPDATA\Microsoft\Windows\Start Menu\Programs\Studio.lnk")
$lnk.TargetPath = "$Prefix\venv\Scripts\studio.exe"
$lnk.Save()
Write-Host "Done. Studio is in the Start menu."
