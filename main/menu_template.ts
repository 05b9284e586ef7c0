/**
 * The application menu as data (Electron's Menu.buildFromTemplate takes it as is). No electron
 * import, so the structure per platform is unit-tested.
 */

export interface MenuItemTemplate {
  label?: string;
  role?: string;
  type?: 'separator' | 'submenu' | 'normal';
  accelerator?: string;
  click?: () => void;
  submenu?: MenuItemTemplate[];
}

export interface MenuActions {
  newProject: () => void;
  openProject: () => void;
  openSample: () => void;
}

const separator: MenuItemTemplate = { type: 'separator' };

export function buildMenuTemplate(platform: NodeJS.Platform, actions: MenuActions): MenuItemTemplate[] {
  const mac = platform === 'darwin';
  const file: MenuItemTemplate = {
    label: 'File',
    submenu: [
      { label: 'New Project…', accelerator: 'CmdOrCtrl+N', click: actions.newProject },
      { label: 'Open Project…', accelerator: 'CmdOrCtrl+O', click: actions.openProject },
      // Only macOS has an app-level recent list in the menu; elsewhere the OS shell shows it.
      ...(mac ? [{ label: 'Open Recent', role: 'recentDocuments', submenu: [{ label: 'Clear Menu', role: 'clearRecentDocuments' }] }] : []),
      { label: 'Open Sample Project', click: actions.openSample },
      separator,
      mac ? { role: 'close' } : { role: 'quit' },
    ],
  };
  return [
    ...(mac ? [{ role: 'appMenu' }] : []),
    file,
    { role: 'editMenu' },
    { role: 'viewMenu' },
    { role: 'windowMenu' },
    // macOS has About in the app menu.
    ...(mac ? [] : [{ role: 'help', submenu: [{ role: 'about' }] }]),
  ];
}
