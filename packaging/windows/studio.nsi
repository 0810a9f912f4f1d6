; Studio's Windows installer: per user (no administrator rights), Start-menu entry, and an entry in
; Settings > Apps & features to uninstall. Built by packaging/build.py:
;   makensis -WX -DVERSION=0.1.0 -DPAYLOAD=build\packaging\payload-windows -DOUTFILE=dist\Studio.exe studio.nsi
; The payload's setup.cmd installs Studio's own Python, picks the PyTorch build for the GPU and
; installs the locked packages; the uninstaller keeps the person's runs, exports and settings.
Unicode true
RequestExecutionLevel user
!ifndef COMPRESSOR
  !define COMPRESSOR lzma
!endif
SetCompressor /SOLID ${COMPRESSOR}
!include "MUI2.nsh"

!define UNINST_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\Studio"
Name "Studio ${VERSION}"
OutFile "${OUTFILE}"
InstallDir "$LOCALAPPDATA\Programs\Studio"
InstallDirRegKey HKCU "${UNINST_KEY}" "InstallLocation"
ShowInstDetails show
ShowUninstDetails show

!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "English"

Section "Studio"
  SetOutPath "$INSTDIR\app"
  File /r "${PAYLOAD}\*.*"
  WriteUninstaller "$INSTDIR\Uninstall Studio.exe"
  WriteRegStr HKCU "${UNINST_KEY}" "DisplayName" "Studio"
  WriteRegStr HKCU "${UNINST_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKCU "${UNINST_KEY}" "Publisher" "Studio"
  WriteRegStr HKCU "${UNINST_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKCU "${UNINST_KEY}" "UninstallString" '"$INSTDIR\Uninstall Studio.exe"'
  WriteRegDWORD HKCU "${UNINST_KEY}" "NoModify" 1
  WriteRegDWORD HKCU "${UNINST_KEY}" "NoRepair" 1
  CreateShortcut "$SMPROGRAMS\Studio.lnk" "$INSTDIR\app\studio.cmd" "" "" 0 SW_SHOWMINIMIZED
  CreateShortcut "$SMPROGRAMS\Studio (repair).lnk" "$INSTDIR\app\setup.cmd" 'repair --prefix "$INSTDIR"'
  DetailPrint "Setting Studio up: its own Python, PyTorch for your GPU, the packages (several minutes)..."
  nsExec::ExecToLog '"$INSTDIR\app\setup.cmd" install --prefix "$INSTDIR"'
  Pop $0
  StrCmp $0 "0" done
  MessageBox MB_ICONEXCLAMATION "Studio's set-up did not finish (the details above say why). Start Studio from the Start menu to finish it, or run this installer again."
  done:
SectionEnd

Section "Uninstall"
  RMDir /r "$INSTDIR\app"
  RMDir /r "$INSTDIR\python"
  RMDir /r "$INSTDIR\env"
  RMDir /r "$INSTDIR\cache"
  Delete "$INSTDIR\state.json"
  Delete "$INSTDIR\Uninstall Studio.exe"
  RMDir "$INSTDIR"
  Delete "$SMPROGRAMS\Studio.lnk"
  Delete "$SMPROGRAMS\Studio (repair).lnk"
  DeleteRegKey HKCU "${UNINST_KEY}"
  MessageBox MB_ICONINFORMATION "Studio is uninstalled. Your runs, exports and settings are kept in $LOCALAPPDATA\studio."
SectionEnd
